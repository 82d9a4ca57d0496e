"""Generated NNEF identifiers never start like a literal that tract's parser would read first."""
from __future__ import annotations

import pytest

from fx2nnef.backends.nnef.graph import Graph
from fx2nnef.backends.nnef.lower import Builder


@pytest.mark.parametrize("base", ["inf", "inflate", "true_divide", "falsey", "1x"])
def test_fresh_names_do_not_start_like_literals(base):
    name = Builder(Graph()).fresh(base)
    assert not name.startswith(("inf", "true", "false")) and (name[0].isalpha() or name[0] == "_")
