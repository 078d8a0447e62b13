"Contracts of semicontrast.splits: patient-level, seeded, saved splits."
import json
import numpy as np
import pytest

from semicontrast.core import DataError
from semicontrast.data import Case, synthetic_phantoms
from semicontrast.splits import Split, make_split

PARTS = ('labelled', 'unlabelled', 'valid', 'test')


def acdc_like(n_patients=10, single=0, labelled=True):
    "`n_patients` labelled patients with two frames (ED, ES) each, plus `single` one-volume patients."
    img = np.zeros((2, 4, 4), np.float32)
    lbl = np.zeros((2, 4, 4), np.uint8) if labelled else None
    cases = [Case(f'patient{p:03d}_{ph}', img, lbl, patient=f'patient{p:03d}')
             for p in range(1, n_patients + 1) for ph in ('ED', 'ES')]
    cases += [Case(f'single{i}', img, lbl) for i in range(single)]
    return cases


def patients_of(split, cases, part):
    by_id = {c.id: c.patient for c in cases}
    return {by_id[i] for i in getattr(split, part)}


@pytest.mark.parametrize('seed', range(6))
def test_patient_grouping(seed):
    cases = acdc_like(10, single=3)  # 13 patients, 23 cases
    s = make_split(cases, n_labelled=3, n_valid=2, n_test=2, seed=seed)
    pats = {p: patients_of(s, cases, p) for p in PARTS}
    assert [len(pats[p]) for p in PARTS] == [3, 13 - 7, 2, 2]
    # every case is in exactly one part, and a part holds ALL frames of its patients
    all_ids = [i for p in PARTS for i in getattr(s, p)]
    assert sorted(all_ids) == sorted(c.id for c in cases)
    for p in PARTS:
        assert set(getattr(s, p)) == {c.id for c in cases if c.patient in pats[p]}
    for a in PARTS:
        for b in PARTS:
            if a < b: assert not (pats[a] & pats[b])
    assert s.check(cases) is s


def test_seeded_reproducible_and_seeds_differ():
    cases = acdc_like(12)
    assert make_split(cases, 2, seed=3) == make_split(cases, 2, seed=3)
    # the input order of the cases does not matter, only the seed
    assert make_split(cases[::-1], 2, seed=3) == make_split(cases, 2, seed=3)
    draws = {tuple(make_split(cases, 2, seed=s).labelled) for s in range(8)}
    assert len(draws) > 3
    assert make_split(cases, 2, seed=0).seed == 0


def test_carving_order_test_first():
    "Changing the number of labelled patients must not move the test (or valid) patients."
    cases = acdc_like(12)
    a, b = make_split(cases, 1, n_valid=2, n_test=3, seed=7), make_split(cases, 6, n_valid=2, n_test=3, seed=7)
    assert a.test == b.test and a.valid == b.valid
    assert set(a.labelled) < set(b.labelled)  # labelled patients come next in the same shuffled order


def test_fractions_and_counts():
    cases = acdc_like(10)
    s = make_split(cases, n_labelled=0.3, n_valid=0.1, n_test=0.2)
    assert [len(patients_of(s, cases, p)) for p in ('labelled', 'valid', 'test', 'unlabelled')] == [3, 1, 2, 4]
    s = make_split(cases, n_labelled=0.01)           # 0.1 patients -> at least one
    assert len(patients_of(s, cases, 'labelled')) == 1
    s = make_split(cases, n_labelled=2, n_unlabelled=3)
    assert len(patients_of(s, cases, 'unlabelled')) == 3
    assert len(s.labelled + s.unlabelled + s.valid + s.test) == 2 * (2 + 3 + 1 + 1)  # 3 patients left unused
    s = make_split(cases, n_labelled=2, n_valid=0, n_unlabelled=0)
    assert s.valid == [] and s.unlabelled == []
    assert isinstance(make_split(cases, np.int64(2)), Split)


def test_save_load_round_trip(tmp_path):
    cases = acdc_like(8)
    s = make_split(cases, 2, seed=11)
    f = tmp_path / 'sub' / 'split.json'
    s.save(f)
    d = json.loads(f.read_text())
    for p in PARTS: assert d[p] == getattr(s, p)
    assert d['seed'] == 11 and 'version' in d
    assert d['counts']['labelled']['cases'] == 4 and d['counts']['labelled']['patients'] == 2
    s2 = Split.load(f)
    assert s2 == s and str(f) in str(s2.source)
    s2.check(cases)


def test_summary_and_cases():
    cases = acdc_like(6)
    s = make_split(cases, 2, seed=1)
    txt = s.summary()
    assert len(txt.splitlines()) >= 5
    for p in PARTS: assert p in txt
    assert '4 cases' in txt and '2 patients' in txt
    lab = s.cases(cases, 'labelled')
    assert all(isinstance(c, Case) for c in lab) and [c.id for c in lab] == s.labelled
    with pytest.raises(DataError, match='train'):
        s.cases(cases, 'train')


@pytest.mark.parametrize('kw, words', [
    (dict(n_labelled=8, n_valid=1, n_test=2), ['n_labelled', '10 patients']),
    (dict(n_labelled=0), ['n_labelled']),
    (dict(n_labelled=-1), ['n_labelled', 'negative']),
    (dict(n_labelled=2, n_test=0), ['n_test']),
    (dict(n_labelled=2, n_valid=-2), ['n_valid']),
    (dict(n_labelled=1.5), ['n_labelled', 'fraction']),
    (dict(n_labelled=True), ['n_labelled']),
    (dict(n_labelled='3'), ['n_labelled']),
    (dict(n_labelled=2, n_unlabelled=8), ['n_unlabelled', '10 patients']),
])
def test_make_split_refusals(kw, words):
    with pytest.raises(DataError) as e:
        make_split(acdc_like(10), **kw)
    for w in words: assert w in str(e.value)


def test_refuse_duplicated_ids_and_empty():
    cases = acdc_like(4)
    with pytest.raises(DataError, match='patient002_ES'):
        make_split(cases + [cases[3]], 1)
    with pytest.raises(DataError):
        make_split([], 1)


def test_split_structure_refusals():
    with pytest.raises(DataError, match="'labelled' and 'test'"):
        Split(['a', 'b'], ['c'], [], ['b'])
    with pytest.raises(DataError, match='more than once'):
        Split(['a', 'a'], [], [], ['b'])
    with pytest.raises(DataError, match='labelled'):
        Split([], ['a'], [], ['b'])
    with pytest.raises(DataError, match='test'):
        Split(['a'], ['b'], [], [])


def test_check_against_cases():
    cases = acdc_like(4)
    # one patient in two parts (its ED frame labelled, its ES frame in test)
    s = Split(['patient001_ED'], ['patient002_ED', 'patient002_ES'], [], ['patient001_ES'])
    with pytest.raises(DataError, match='patient001'):
        s.check(cases)
    with pytest.raises(DataError, match='more than once'):
        make_split(cases, 1).check(cases + cases[:1])


def test_loaded_split_unknown_ids_named(tmp_path):
    cases = acdc_like(4)
    f = tmp_path / 'split.json'
    Split(['patient001_ED', 'ghost_7'], [], [], ['patient003_ED', 'ghost_9']).save(f)
    with pytest.raises(DataError) as e:
        Split.load(f).check(cases)
    msg = str(e.value)
    assert 'ghost_7' in msg and 'ghost_9' in msg and str(f) in msg and 'patient001_ED' not in msg


def test_load_refusals(tmp_path):
    f = tmp_path / 'bad.json'
    f.write_text('{"labelled": ["a"], "test": ')
    with pytest.raises(DataError) as e: Split.load(f)
    assert str(f) in str(e.value) and 'JSON' in str(e.value)
    f.write_text(json.dumps({'labelled': ['a'], 'test': ['b']}))
    with pytest.raises(DataError) as e: Split.load(f)
    assert str(f) in str(e.value) and 'unlabelled' in str(e.value) and 'valid' in str(e.value)
    f.write_text(json.dumps(['a']))
    with pytest.raises(DataError, match='bad.json'): Split.load(f)
    f.write_text(json.dumps({'labelled': 'a', 'unlabelled': [], 'valid': [], 'test': ['b']}))
    with pytest.raises(DataError, match='bad.json'): Split.load(f)
    f.write_text(json.dumps({'labelled': ['a'], 'unlabelled': ['a'], 'valid': [], 'test': ['b']}))
    with pytest.raises(DataError, match='bad.json'): Split.load(f)
    with pytest.raises(DataError, match='nope.json'): Split.load(tmp_path / 'nope.json')


def test_patients_without_labels_only_unlabelled():
    lab = acdc_like(4)
    unl = [c for c in acdc_like(9, labelled=False) if int(c.patient[7:]) > 4]       # patients 5..9 without labels
    half = acdc_like(11)[-2:]; half[1].label = None                                  # patient011: ES frame unlabelled
    cases = lab + unl + half
    for seed in range(5):
        s = make_split(cases, n_labelled=2, n_valid=1, n_test=1, seed=seed)
        for p in ('labelled', 'valid', 'test'):
            assert all(int(i[7:10]) <= 4 for i in getattr(s, p)), (seed, p)
        assert len(s.unlabelled) == 20 - 8          # 20 cases, 4 labelled patients x 2 frames
        assert len(make_split(cases, 1, 1, 1, n_unlabelled=2, seed=seed).unlabelled) == 4
    with pytest.raises(DataError, match='only 4 of the 10 patients have a label'):
        make_split(cases, n_labelled=3, n_valid=1, n_test=1)
    with pytest.raises(DataError, match='label'):
        make_split(acdc_like(5, labelled=False), 1)


def test_phantoms_one_patient_per_case():
    cases = synthetic_phantoms(5, shape=(4, 8, 8))
    s = make_split(cases, 2, n_valid=1, n_test=1, seed=0)
    assert [len(getattr(s, p)) for p in PARTS] == [2, 1, 1, 1]
