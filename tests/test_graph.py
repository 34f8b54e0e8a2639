"""radius_graph against ASE's neighbour list: same edge set, shifts and vectors."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from ase.neighborlist import neighbor_list

from matscale.data.batch import collate
from matscale.errors import DataError
from matscale.models.graph import edge_vectors, radius_graph


def _ase_edges(atoms, cutoff, offset=0):
    i, j, S = neighbor_list("ijS", atoms, cutoff, self_interaction=False)
    return {(int(a) + offset, int(b) + offset, tuple(int(x) for x in s)) for a, b, s in zip(i, j, S)}


def _our_edges(graph):
    j, i = graph.edge_index.numpy()  # [source j, target i]
    S = graph.shift.numpy().round().astype(int)
    return {(int(a), int(b), tuple(int(x) for x in s)) for a, b, s in zip(i, j, S)}


def _random_atoms(rng, n, pbc, scale, outside=False):
    cell = scale * (np.eye(3) + 0.35 * rng.normal(size=(3, 3)))  # triclinic, not degenerate
    frac = rng.random((n, 3)) * (1.6 if outside else 1.0) - (0.3 if outside else 0.0)
    return Atoms(numbers=rng.integers(1, 80, n), positions=frac @ cell, cell=cell, pbc=pbc)


def test_same_edges_as_ase_on_random_triclinic_batch():
    rng = np.random.default_rng(0)
    structures = [
        _random_atoms(rng, 7, True, 3.0, outside=True),  # atoms outside the cell are wrapped
        _random_atoms(rng, 1, True, 1.5),  # 1-atom cell smaller than the cutoff: many images
        _random_atoms(rng, 3, [True, False, True], 2.0, outside=True),  # partial pbc, atoms outside the cell
        _random_atoms(rng, 5, False, 2.0),  # molecule in a box
        _random_atoms(rng, 2, True, 1.2),  # tiny cell, cutoff spans several cells
    ]
    cutoff = 4.5
    batch = collate(structures, labels=False, dtype=torch.float64)
    graph = radius_graph(batch, cutoff)
    expected, offset = set(), 0
    for atoms in structures:
        expected |= _ase_edges(atoms, cutoff, offset)
        offset += len(atoms)
    ours = _our_edges(graph)
    assert len(ours) == graph.num_edges  # no duplicates
    assert ours == expected
    # the small cells really have many periodic images
    assert graph.shift.abs().max() >= 3
    # edge vectors and structure index agree with ASE's distance vectors
    vec = edge_vectors(batch, graph)
    assert (vec.norm(dim=1) < cutoff).all() and (vec.norm(dim=1) > 0).all()
    j, i = graph.edge_index
    assert torch.equal(graph.edge_batch, batch.batch[i]) and torch.equal(graph.edge_batch, batch.batch[j])
    D = {}
    offset = 0
    for atoms in structures:
        a, b, S, d = neighbor_list("ijSD", atoms, cutoff)
        for x, y, s, dv in zip(a, b, S, d):
            D[(int(x) + offset, int(y) + offset, tuple(int(v) for v in s))] = dv
        offset += len(atoms)
    for k, key in enumerate(zip(i.tolist(), j.tolist(), map(tuple, graph.shift.round().int().tolist()))):
        np.testing.assert_allclose(vec[k].numpy(), D[key], atol=1e-10)


def test_one_atom_cell_counts_all_images():
    atoms = bulk("Cu", "fcc", a=3.6)  # primitive cell, 1 atom
    batch = collate([atoms], labels=False)
    for cutoff, shells in [(2.6, 12), (3.7, 18), (4.5, 42)]:
        graph = radius_graph(batch, cutoff)
        assert graph.num_edges == shells  # 12 nearest, +6 second, +24 third neighbours
        assert (graph.edge_index == 0).all()


def test_max_neighbors_keeps_closest_and_whole_shells():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.05, seed=3)
    batch = collate([atoms], labels=False, dtype=torch.float64)
    full = radius_graph(batch, 5.0)
    capped = radius_graph(batch, 5.0, max_neighbors=8)
    d_full = edge_vectors(batch, full).norm(dim=1)
    d_cap = edge_vectors(batch, capped).norm(dim=1)
    for i in range(len(atoms)):
        mine = torch.sort(d_cap[capped.edge_index[1] == i]).values
        ref = torch.sort(d_full[full.edge_index[1] == i]).values
        assert len(mine) >= 8
        # kept = the closest ones, plus anything tied (within 1e-2 Å²) with the 8th
        assert torch.allclose(mine, ref[: len(mine)])
        assert len(mine) == int((ref ** 2 <= ref[7] ** 2 + 1e-2).sum())
    # an unrattled fcc crystal: the 12-atom first shell is never split by a cap of 8
    perfect = collate([bulk("Cu", "fcc", a=3.6)], labels=False)
    assert radius_graph(perfect, 5.0, max_neighbors=8).num_edges == 12
    # no cap when it exceeds the neighbour count
    assert radius_graph(batch, 5.0, max_neighbors=1000).num_edges == full.num_edges


def test_edge_vectors_are_differentiable_in_positions_and_cell():
    batch = collate([bulk("Al", "fcc", a=4.05) * (2, 1, 1)], labels=False, dtype=torch.float64)
    graph = radius_graph(batch, 4.0)
    batch.positions.requires_grad_(True)
    batch.cell.requires_grad_(True)
    edge_vectors(batch, graph).norm(dim=1).sum().backward()
    assert batch.positions.grad is not None and batch.cell.grad.abs().sum() > 0


def test_singular_cells():
    molecule = Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])  # no cell, no pbc
    graph = radius_graph(collate([molecule], labels=False), 1.2)
    assert _our_edges(graph) == _ase_edges(molecule, 1.2)
    broken = Atoms("H", positions=[[0, 0, 0]], cell=np.zeros((3, 3)), pbc=True)
    with pytest.raises(DataError, match="singular cell"):
        radius_graph(collate([broken], labels=False), 2.0)
