"""nasframe: weight-sharing neural architecture search on PyTorch.

The pipeline: a :class:`~nasframe.core.space.SearchSpace` builds a supernet; a
:class:`~nasframe.training.SupernetTrainer` trains it with paths from a path sampler; a selector picks an
arch with a :class:`~nasframe.evaluation.SupernetEvaluator`; :func:`~nasframe.export.extract` turns the arch
into a standalone module. ``nasframe.search.run_search`` runs all of it; ``nasframe search`` is the CLI.
"""

from nasframe.core.arch import Arch
from nasframe.core.choice import Choice
from nasframe.core.registry import DATASETS, SAMPLERS, SELECTORS, SPACES
from nasframe.core.space import DataSpec, SearchSpace

__version__ = "0.1.0"

__all__ = ["Arch", "Choice", "DATASETS", "DataSpec", "SAMPLERS", "SELECTORS", "SPACES", "SearchSpace", "__version__"]
