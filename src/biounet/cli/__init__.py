"""The ``biounet`` command: verbs that parse flags, call the library and print what it made.

``parser`` (the flags of each verb), ``flags`` (flags that verbs share, and their choices),
``options`` (flags turned into the library's options), ``commands`` (what each verb does),
``errors`` (exit statuses and messages), ``entry`` (:func:`main`, the console script). The
library is imported only when a verb runs, so ``biounet --help`` answers at once.
"""

from biounet.cli.entry import main

__all__ = ["main"]
