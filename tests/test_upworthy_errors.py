"""The Upworthy loader raises only its documented errors (issue 18, findings 3 and 6): the cases the issue found,
and a bounded fuzz of mutated package files in which nothing but UpworthyFormatError may escape."""
from __future__ import annotations

import gzip
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abgym.data.upworthy import DEFAULT_PATH, MAX_COUNT, Experiment, UpworthyFormatError, load_experiments

HEADER = "clickability_test_id,test_week,headline,impressions,clicks\n"
_counter = itertools.count()


def _write(tmp_path, data: bytes, name="packages.csv"):
    path = tmp_path / f"{next(_counter)}-{name}"  # a new path per case: the loader caches by path
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, words", [
    ("header_only.csv", HEADER.encode(), "no data rows"),
    ("zero.csv", (HEADER + "a,201401,Hi,0,0\na,201401,Ho,0,0\n").encode(), "no package is left"),
    ("corrupt.csv.gz", gzip.compress((HEADER + "a,201401,Hi,10,1\n" * 50).encode())[:-30] + b"x" * 17,
     "cannot be read"),
    ("dup.csv", b"clickability_test_id,test_week,headline,impressions,clicks, clicks\na,201401,Hi,10,1,2\n",
     "appears more than once"),
    ("dup_exact.csv", b"clickability_test_id,test_week,headline,impressions,clicks,clicks\na,201401,Hi,10,1,2\n",
     "appears more than once"),
    ("huge.csv", (HEADER + "a,201401,Hi,9300000000000000000,1\na,201401,Ho,10,1\n").encode(), "too large"),
])
def test_the_issues_inputs_raise_the_format_error(tmp_path, name, data, words):
    with pytest.raises(UpworthyFormatError, match=words) as caught:
        load_experiments(_write(tmp_path, data, name))
    assert "file " in str(caught.value) and "Fix:" in str(caught.value)


def test_a_corrupt_gzip_deep_inside_the_stream(tmp_path):
    data = bytearray(gzip.compress((HEADER + "a,201401,Hi,10,1\n" * 200).encode()))
    data[40:60] = bytes(20)
    with pytest.raises(UpworthyFormatError, match="cannot be read"):
        load_experiments(_write(tmp_path, bytes(data), "corrupt.csv.gz"))


def test_counts_up_to_the_bound_stay_exact(tmp_path):
    experiments = load_experiments(_write(tmp_path, (HEADER + f"a,201401,Hi,{MAX_COUNT},1\na,201401,Ho,10,1\n")
                                          .encode()))
    assert experiments[0].impressions.max() == MAX_COUNT and (experiments[0].impressions > 0).all()


def _sample_file() -> bytes:
    with gzip.open(DEFAULT_PATH, "rt", encoding="utf-8-sig") as handle:
        lines = [next(handle) for _ in range(13)]
    return "".join(lines).encode()


SAMPLE = _sample_file()


@st.composite
def mutated_files(draw):
    data = bytearray(SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["bytes", "cut", "cell", "line", "header"]))
        if kind == "bytes" and data:
            start = draw(st.integers(0, len(data) - 1))
            data[start:start + draw(st.integers(0, 8))] = draw(st.binary(max_size=8))
        elif kind == "cut":
            data = data[:draw(st.integers(0, len(data)))]
        elif kind == "cell":
            text = data.decode("utf-8", "replace").splitlines(keepends=True)
            if len(text) > 1:
                row = draw(st.integers(1, len(text) - 1))
                cells = text[row].rstrip("\n").split(",")
                cells[draw(st.integers(0, len(cells) - 1))] = draw(st.sampled_from(
                    ["", "-1", "nan", "inf", "1e30", "9300000000000000000", "3.5", "True", "x", '"', "0"]))
                text[row] = ",".join(cells) + "\n"
            data = bytearray("".join(text).encode())
        elif kind == "line":
            text = data.decode("utf-8", "replace").splitlines(keepends=True)
            if text:
                del text[draw(st.integers(0, len(text) - 1))]
            data = bytearray("".join(text).encode())
        else:  # rename or repeat a header field
            text = data.decode("utf-8", "replace").split("\n", 1)
            fields = text[0].split(",")
            index = draw(st.integers(0, len(fields) - 1))
            fields[index] = draw(st.sampled_from(["clicks", " impressions", "headline", "", "x", fields[index]]))
            text[0] = ",".join(fields)
            data = bytearray("\n".join(text).encode())
    if draw(st.booleans()):
        data = bytearray(gzip.compress(bytes(data)))
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=mutated_files())
def test_fuzzed_files_raise_only_the_documented_error(tmp_path, data):
    try:
        experiments = load_experiments(_write(tmp_path, data))
    except UpworthyFormatError:
        return
    assert all(isinstance(e, Experiment) for e in experiments)
    for experiment in experiments:
        assert (experiment.impressions > 0).all() and (experiment.clicks >= 0).all()
        assert (experiment.clicks <= experiment.impressions).all() and np.isfinite(experiment.ctr).all()
