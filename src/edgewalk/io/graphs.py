"""Graph files: an edge list (two node names per line, ``#`` starts a comment, a repeated pair is
a parallel edge) or GraphML (``.graphml``, read with networkx, the optional extra
``edgewalk[graphs]``). Either becomes a :class:`Graph` by :func:`edgewalk.graph.from_edges`, and
its description is the edge list itself, so run, training and study files rebuild it without
the file."""

from __future__ import annotations

import os

from ..errors import InputError
from ..graph import Graph, from_edges, from_networkx

GRAPHML_SUFFIXES = (".graphml", ".xml")


def read_edge_list(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """The edges of an edge-list file. Raises InputError naming the file and the line of the
    first line that is not two node names."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.readlines()
    except FileNotFoundError:
        raise InputError(f"--graph {path}: no such file") from None
    except UnicodeDecodeError:
        raise InputError(f"--graph {path}: not a text file (an edge list is two node names per line)") from None
    except OSError as error:
        raise InputError(f"--graph {path}: cannot read it ({error.strerror})") from None
    edges = []
    for number, line in enumerate(lines, 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2:
            raise InputError(f"--graph {path}, line {number}: expected two node names, got "
                             f"{len(words)} word{'s' if len(words) != 1 else ''} ({line.strip()[:60]!r})")
        edges.append((words[0], words[1]))
    if not edges:
        raise InputError(f"--graph {path}: the edge list is empty (no line names two nodes)")
    return edges


def read_graph(path: str | os.PathLike[str], root: str) -> Graph:
    """The graph in an edge-list or GraphML file, its start state entering ``root``."""
    if str(path).lower().endswith(GRAPHML_SUFFIXES):
        try:
            import networkx
        except ImportError:
            raise InputError(f"--graph {path}: reading GraphML needs networkx "
                             "(pip install 'edgewalk[graphs]'); an edge list needs nothing") from None
        try:
            G = networkx.read_graphml(path, force_multigraph=True)
        except FileNotFoundError:
            raise InputError(f"--graph {path}: no such file") from None
        except Exception as error:  # networkx raises XML, key and type errors of many kinds
            raise InputError(f"--graph {path}: not readable GraphML ({type(error).__name__}: "
                             f"{str(error)[:120]})") from None
        try:
            return from_networkx(G, root)
        except InputError as error:
            raise type(error)(f"--graph {path}: {error}") from None
    edges = read_edge_list(path)
    try:
        return from_edges(edges, root)
    except InputError as error:
        raise type(error)(f"--graph {path}: {error}") from None
