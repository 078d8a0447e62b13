"Contracts of the MixCL pooled loader: PoolSource, PooledDataset (label spaces, label maps), pooled_dls (balance, seeds, shapes)."
import numpy as np
import pytest
import torch

from semicontrast.core import IGNORE_INDEX, DataError
from semicontrast.data import Case, synthetic_phantoms
from semicontrast.loaders import Preprocess, SliceDataset, PoolSource, PooledDataset, PooledDL, pooled_dls

SIZE = (32, 32)


def offset(cases, shift, prefix=None):
    "Copies of `cases` with intensities shifted by `shift` (so a slice's source can be read off its pixels)."
    return [Case(f'{prefix or ""}{c.id}', c.image + shift, c.label, c.spacing) for c in cases]


def make_sources(n_a=2, n_b=3, n_u=4, z=4):
    "A: 3 classes, offset 0; B: 3 classes (same ids, other meaning), offset 100, one unlabelled case; U: unlabelled, offset 200."
    prep = Preprocess(size=SIZE, intensity='none')
    a = PoolSource('a', synthetic_phantoms(n_a, shape=(z, 30, 30), n_classes=3, seed=1), prep, ['bg', 'liver', 'spleen'])
    b_cases = offset(synthetic_phantoms(n_b - 1, shape=(z, 28, 32), n_classes=3, seed=2), 100.) + \
              offset(synthetic_phantoms(1, shape=(z, 28, 32), seed=3, labelled=False), 100., 'u')
    b = PoolSource('b', b_cases, prep, ['bg', 'kidney', 'tumour'])
    u = PoolSource('u', offset(synthetic_phantoms(n_u, shape=(z, 32, 32), seed=4), 200.), prep)   # labels present, unused
    return a, b, u


def source_of_x(x):
    "Source index from the intensity offset (images are ~[-1, 3] before the offset)."
    return torch.div(x.flatten(1).median(1).values + 50, 100, rounding_mode='floor').long()


# ---------------------------------------------------------------- PoolSource

def test_pool_source_validates():
    prep = Preprocess(size=SIZE)
    with pytest.raises(DataError, match='name'): PoolSource('', [], prep)
    with pytest.raises(DataError, match="'x': prep must be a Preprocess"): PoolSource('x', [], 'zscore')
    with pytest.raises(DataError, match="'x': class_names"): PoolSource('x', [], prep, ['bg', 'bg'])
    with pytest.raises(DataError, match="'x': class_names"): PoolSource('x', [], prep, 'bg')
    s = PoolSource('x', iter(synthetic_phantoms(1, shape=(4, 8, 8))), prep, ('bg', 'a'))
    assert isinstance(s.cases, list) and s.class_names == ['bg', 'a'] and s.n_classes == 2


# ---------------------------------------------------------------- without a map: one label space per source

def test_no_map_space_is_source_and_labels_unchanged():
    a, b, u = make_sources()
    ds = PooledDataset([a, b, u])
    assert len(ds) == (2 + 3 + 4) * 4
    assert ds.space.tolist() == ds.source_of.tolist() == [0] * 8 + [1] * 12 + [2] * 16
    assert [s['name'] for s in ds.spaces] == ['a', 'b', 'u']
    assert ds.spaces[1] == {'name': 'b', 'sources': ['b'], 'class_names': ['bg', 'kidney', 'tumour']}
    assert ds.spaces[2]['class_names'] is None
    # labels are the source's own ids, pixel for pixel (labelled cases first within a source)
    for k, (src, cases) in enumerate([(a, a.cases), (b, b.cases[:2])]):
        ref = SliceDataset(cases, src.prep)
        start = int((ds.source_of < k).sum())
        for i in range(len(ref)):
            x, y, s = ds[start + i]
            assert s.dtype == torch.long and s.ndim == 0 and s.item() == k
            torch.testing.assert_close(x, ref[i][0]); assert torch.equal(y, ref[i][1])
    # same numeric ids in both spaces: the space is what tells them apart
    ya = torch.stack([ds[i][1] for i in range(8)]); yb = torch.stack([ds[i][1] for i in range(8, 16)])
    assert {1, 2} <= set(ya.unique().tolist()) and {1, 2} <= set(yb.unique().tolist())


def test_unlabelled_items_are_all_ignore():
    a, b, u = make_sources()
    ds = PooledDataset([a, b, u])
    for i in range(len(ds)):
        _, y, _ = ds[i]
        name, cid, _ = ds.index[i]
        labelled = name != 'u' and not cid.startswith('u')
        assert bool((y == IGNORE_INDEX).all()) != labelled, (name, cid)
    assert ds.labelled_fraction == {'a': 1.0, 'b': 8 / 12, 'u': 0.0}
    assert ds[-1][2].item() == 2
    with pytest.raises(IndexError): ds[len(ds)]


def test_batches_carry_the_space_of_every_image():
    "Contract with the loss: in every batch, space[i] is the label space of image i, so pixels of different spaces are never compared."
    a, b, u = make_sources()
    dls = pooled_dls([a, b, u], bs=5, seed=3)
    n_batches = 0
    for xb, yb, sb in dls.train:
        n_batches += 1
        assert torch.equal(sb, source_of_x(xb))
        # (space, y) keys: an equal key means the same source and the same local class
        for key_space in sb.unique().tolist():
            assert set(yb[sb == key_space].unique().tolist()) - {IGNORE_INDEX} <= set(range(3))
    assert n_batches == len(dls.train) == 36 // 5
    assert dls.spaces[0]['name'] == 'a' and dls.label_map is None and dls.n_inp == 1
    assert set(dls.prep) == {'a', 'b', 'u'} and dls.prep['a'] is a.prep


# ---------------------------------------------------------------- with a map: one shared space

SHARED = ['background', 'liver', 'spleen', 'kidney']
LMAP = {'a': {0: 0, 1: 1, 2: 2}, 'b': {0: None, 1: 3, 2: None}}


def test_map_remaps_exactly_and_space_is_zero():
    a, b, u = make_sources()
    own, mapped = PooledDataset([a, b, u]), PooledDataset([a, b, u], LMAP, SHARED)
    assert mapped.space.unique().tolist() == [0]
    assert mapped.spaces == [{'name': 'shared', 'sources': ['a', 'b', 'u'], 'class_names': SHARED}]
    lut = {'a': {0: 0, 1: 1, 2: 2, IGNORE_INDEX: IGNORE_INDEX}, 'b': {0: IGNORE_INDEX, 1: 3, 2: IGNORE_INDEX, IGNORE_INDEX: IGNORE_INDEX},
           'u': {IGNORE_INDEX: IGNORE_INDEX}}
    seen = set()
    for i in range(len(own)):
        y0, y1 = own[i][1], mapped[i][1]
        torch.testing.assert_close(own[i][0], mapped[i][0])
        expect = y0.clone().apply_(lambda v, t=lut[own.index[i][0]]: t[v])
        assert torch.equal(y1, expect)
        seen |= set(y1.unique().tolist())
    assert seen == {0, 1, 2, 3, IGNORE_INDEX}


def test_map_json_style_keys_and_many_to_one():
    a, b, u = make_sources()
    m = {'a': {'0': 0, '1': 1, '2': 1}, 'b': {'0': 0, '1': None, '2': None}}   # liver and spleen -> one class
    ds = PooledDataset([a, b], m, ['background', 'organ'])
    values = lambda keep: set().union(*(set(ds[i][1].unique().tolist()) for i in range(len(ds)) if keep(ds.index[i])))
    assert values(lambda k: k[0] == 'a') == {0, 1}                     # liver and spleen -> one class
    # kidney and tumour have no class in this space: unknown, so ignored (not background)
    assert values(lambda k: k[0] == 'b' and not k[1].startswith('u')) == {0, IGNORE_INDEX}
    assert ds.label_map == {'a': {0: 0, 1: 1, 2: 1}, 'b': {0: 0, 1: None, 2: None}}


@pytest.mark.parametrize('lmap, shared, match', [
    ({'a': {0: 0, 1: 1}, 'b': LMAP['b']}, SHARED, r"label_map\['a'\].*2 \(spleen\)"),                # local class missing
    ({**LMAP, 'c': {0: 0}}, SHARED, "'c', which is not a source"),                                  # unknown source
    ({'a': LMAP['a'], 'b': {0: 0, 1: 4, 2: 0}}, SHARED, r"label_map\['b'\]\[1\] = 4"),              # shared id out of range
    ({'a': LMAP['a']}, SHARED, "no entry for the labelled source 'b'"),                              # source missing
    ({**LMAP, 'u': {0: 0}}, SHARED, "source 'u' has class_names=None"),                              # map for an unlabelled source
    ({'a': {0: 0, 1: 1, 2: 2, 3: 1}, 'b': LMAP['b']}, SHARED, "maps local class 3, but source 'a'"),  # local id out of range
    (LMAP, None, 'needs shared_classes'),
    (None, SHARED, 'without label_map'),
])
def test_bad_maps_raise_naming_the_fix(lmap, shared, match):
    a, b, u = make_sources()
    with pytest.raises(DataError, match=match): PooledDataset([a, b, u], lmap, shared)
    with pytest.raises(DataError, match=match): pooled_dls([a, b, u], label_map=lmap, shared_classes=shared, bs=4)


def test_label_value_above_the_classes_raises():
    a, b, u = make_sources()
    short = PoolSource('short', b.cases, b.prep, ['bg', 'kidney'])   # its labels hold 0, 1, 2
    with pytest.raises(DataError, match=r"source 'short', case 'phantom_00\d' holds label value 2.*full class_names"):
        PooledDataset([a, short])


# ---------------------------------------------------------------- geometry

def test_mismatched_channels_and_sizes_raise_naming_the_source():
    a, b, u = make_sources()
    two = PoolSource('rgb', [Case(c.id, np.stack([c.image] * 2), c.label, c.spacing) for c in b.cases], b.prep, b.class_names)
    with pytest.raises(DataError, match="source 'rgb' has 2 channel"): PooledDataset([a, two])
    big = PoolSource('big', b.cases, Preprocess(size=(64, 64), intensity='none'), b.class_names)
    with pytest.raises(DataError, match="source 'big' has prep.size=\\(64, 64\\)"): PooledDataset([a, big])
    mixed = PoolSource('mixed', [a.cases[0], two.cases[0]], a.prep, a.class_names)
    with pytest.raises(DataError, match="source 'mixed'.*channel"): PooledDataset([mixed])
    with pytest.raises(DataError, match="source 'empty' has no cases"): PooledDataset([a, PoolSource('empty', [], a.prep)])
    with pytest.raises(DataError, match="'a' is used twice"): PooledDataset([a, a])
    with pytest.raises(DataError, match='sources is empty'): pooled_dls([])


def test_each_source_keeps_its_own_normalisation():
    "A CT source windowed and an MRI source z-scored in one pool: each slice is normalised by its own source's prep."
    ct_cases = [Case(c.id, c.image * 300 - 100, c.label, c.spacing) for c in synthetic_phantoms(1, shape=(4, 32, 32), seed=1)]
    ct = PoolSource('ct', ct_cases, Preprocess(size=SIZE, intensity='window', window=(-150., 350.)), ['bg', 'a', 'b'])
    mr = PoolSource('mr', synthetic_phantoms(1, shape=(4, 32, 32), seed=2), Preprocess(size=SIZE), ['bg', 'a', 'b'])
    ds = PooledDataset([ct, mr])
    xc = torch.stack([ds[i][0] for i in range(4)]); xm = torch.stack([ds[i][0] for i in range(4, 8)])
    assert xc.min() >= 0 and xc.max() <= 1
    assert abs(xm.mean().item()) < 1e-4 and abs(xm.std().item() - 1) < 1e-2


# ---------------------------------------------------------------- loaders: balance, seeds, shapes

def test_balance_draws_sources_equally():
    prep = Preprocess(size=SIZE, intensity='none')
    small = PoolSource('small', synthetic_phantoms(1, shape=(4, 32, 32), seed=1), prep, ['bg', 'a', 'b'])            # 4 slices
    big = PoolSource('big', offset(synthetic_phantoms(10, shape=(6, 32, 32), seed=2, labelled=False), 100.), prep)   # 60 slices
    plain = pooled_dls([small, big], bs=8, seed=0)
    bal = pooled_dls([small, big], bs=8, balance=True, seed=0)
    assert len(plain.train) == len(bal.train) == 64 // 8
    c_plain = torch.cat([s for _, _, s in plain.train]).bincount(minlength=2).tolist()
    c_bal = torch.cat([s for _, _, s in bal.train]).bincount(minlength=2).tolist()
    assert c_plain == [4, 60]                       # proportional: every slice once
    assert c_bal == [32, 32]                        # equal shares of the 64 draws
    assert bal.balance and not plain.balance
    # the big source is subsampled without repetition, the small one cycled: all its slices appear, about 8 times each
    idx = np.array(bal.train.get_idxs())
    big_idx = idx[idx >= 4]; small_idx = idx[idx < 4]
    assert len(set(big_idx.tolist())) == len(big_idx)
    assert np.bincount(small_idx, minlength=4).tolist() == [8, 8, 8, 8]
    # three sources of very different sizes: each about a third of every epoch
    third = PoolSource('third', offset(synthetic_phantoms(2, shape=(4, 32, 32), seed=5, labelled=False), 200.), prep)
    dl3 = pooled_dls([small, big, third], bs=8, balance=True, seed=1)
    for _ in range(2):
        counts = torch.cat([s for _, _, s in dl3.train]).bincount(minlength=3)
        assert counts.sum() == 72 and all(23 <= c <= 25 for c in counts.tolist()), counts


def test_same_seed_same_order_other_seed_other_order():
    a, b, u = make_sources()
    for balance in (False, True):
        def order(seed):
            dl = pooled_dls([a, b, u], bs=4, balance=balance, seed=seed)
            return [torch.cat([xb.flatten(1)[:, :50] for xb, _, _ in dl.train]) for _ in range(2)]   # two epochs
        o1, o2, o3 = order(7), order(7), order(8)
        assert all(torch.equal(p, q) for p, q in zip(o1, o2))
        assert not torch.equal(o1[0], o3[0])
        assert not torch.equal(o1[0], o1[1])      # epochs differ
    assert PooledDL(PooledDataset([a, b]), bs=4, seed=2).get_idxs() == PooledDL(PooledDataset([a, b]), bs=4, seed=2).get_idxs()


def test_len_and_batch_shapes_and_valid():
    a, b, u = make_sources()
    va = PoolSource('a', synthetic_phantoms(1, shape=(5, 30, 30), n_classes=3, seed=9), a.prep, a.class_names)
    dls = pooled_dls([a, b, u], [va], label_map=LMAP, shared_classes=SHARED, bs=8, seed=0)
    assert len(dls.train.dataset) == 36 and len(dls.train) == 36 // 8                      # drop-last
    assert len(dls.valid.dataset) == 5 and len(dls.valid) == 1                              # keeps the last batch
    xb, yb, sb = dls.one_batch()
    assert (xb.shape, yb.shape, sb.shape) == ((8, 1, 32, 32), (8, 32, 32), (8,))
    assert (xb.dtype, yb.dtype, sb.dtype) == (torch.float32, torch.int64, torch.int64)
    xv, yv, sv = dls.valid.one_batch()
    assert xv.shape == (5, 1, 32, 32) and sv.tolist() == [0] * 5 and set(yv.unique().tolist()) <= {0, 1, 2, IGNORE_INDEX}
    assert dls.n_inp == 1 and dls.train.n_inp == 1 and dls.valid.n_inp == 1
    assert dls.label_map == LMAP and dls.spaces[0]['class_names'] == SHARED
    assert dls.train.new(shuffle=False).n_inp == 1
    small = pooled_dls([PoolSource('a', a.cases[:1], a.prep, a.class_names)], bs=8)        # fewer slices than bs: one batch
    assert len(small.train) == 1 and small.one_batch()[0].shape[0] == 4
    assert len(pooled_dls([a], None, bs=4).valid) == 0
    with pytest.raises(DataError, match='batch size'): pooled_dls([a], bs=0)


def test_valid_sources_follow_the_training_spaces():
    a, b, u = make_sources()
    vb = PoolSource('b', b.cases[:1], b.prep, b.class_names)
    va = PoolSource('a', a.cases[:1], a.prep, a.class_names)
    dls = pooled_dls([a, b, u], [vb, va], bs=4)                     # valid order b, a: spaces still those of training
    assert dls.valid.dataset.space.tolist() == [1] * 4 + [0] * 4
    assert dls.valid.dataset.spaces is dls.train.dataset.spaces
    with pytest.raises(DataError, match="source 'c' is not a source of the training pool"):
        pooled_dls([a, b], [PoolSource('c', a.cases[:1], a.prep, a.class_names)], bs=4)
    with pytest.raises(DataError, match="source 'a' has other class_names or prep"):
        pooled_dls([a, b], [PoolSource('a', a.cases[:1], Preprocess(size=SIZE), a.class_names)], bs=4)
