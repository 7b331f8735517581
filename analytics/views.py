from tokens.views.placeholder import PlaceholderPanelView

__all__ = ["PlaceholderPanelView"]
