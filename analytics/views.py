from tokens.views import PlaceholderPanelView

__all__ = ["PlaceholderPanelView"]
