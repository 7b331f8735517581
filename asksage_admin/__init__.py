# Django's form messages in the product's words, before any form class is built
# (asksage_admin/lib/wording.py).
from asksage_admin.lib import wording

wording.install()
