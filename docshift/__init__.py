"""docshift core: migration definitions, the script directory, settings, errors and document transforms.

Nothing here imports Prefect, so application code can reuse a migration's functions and tests run fast.
"""

from .errors import DocshiftError
from .lookup import Lookup, Prefetch
from .operations import (CopyDocuments, CreateIndex, DeleteDocuments, DropCollection, DropIndex, Index,
                         RenameCollection)
from .spec import INITIAL_VERSION, ExpandContract, Migration
from .transform import restore_from

__all__ = ["CopyDocuments", "CreateIndex", "DeleteDocuments", "DocshiftError", "DropCollection", "DropIndex",
           "ExpandContract", "INITIAL_VERSION", "Index", "Lookup", "Migration", "Prefetch", "RenameCollection",
           "restore_from"]
__version__ = "0.1.0"
