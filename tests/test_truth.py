"""MOTChallenge ground truth: parsing, ignored boxes, and errors that name file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cobotguard.sensor.truth import TruthError, read_mot_truth


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gt.txt"
    path.write_text(text)
    return path


def test_reads_mot15_and_mot16_lines(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "1,1,88,99,61.08,218.56,1,4.48,5.50,0\n"  # MOT15: world coordinates after the flag
        "1,2,10,20,30,40,0,-1,-1,-1\n"  # flag 0: not considered
        "\n"
        "2,1,90,99,61,218,1,1,0.83\n",  # MOT16+: class and visibility after the flag
    )
    truth = read_mot_truth(path)
    assert [(b.frame, b.track, b.considered) for b in truth.boxes] == [
        (1, 1, True),
        (1, 2, False),
        (2, 1, True),
    ]
    assert truth.boxes[0].h == pytest.approx(218.56)
    assert truth.last_frame == 2
    assert [b.track for b in truth.in_frame(1)] == [1, 2]
    cols = truth.as_arrays()
    assert cols["x1"][0] == pytest.approx(88 + 61.08) and cols["y1"][0] == pytest.approx(99 + 218.56)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,1,10,20,30\n", r"gt.txt:1: 5 field\(s\); expected at least 7: frame, id, x, y, w, h, flag"),
        ("1,1,10,20,30,40,1\n1,2,x,20,30,40,1\n", r"gt.txt:2: field x: 'x' is not a number"),
        ("0,1,10,20,30,40,1\n", r"gt.txt:1: field frame: 0; frames are numbered from 1"),
        ("1.5,1,10,20,30,40,1\n", r"gt.txt:1: field frame: '1.5' is not a whole number"),
        ("1,1,10,20,0,40,1\n", r"gt.txt:1: field w: 0; a box's width and height must be > 0"),
        ("1,1,10,20,30,nan,1\n", r"gt.txt:1: field h: 'nan' is not a finite number"),
        ("1,1,10,20,30,40,yes\n", r"gt.txt:1: field flag: 'yes' is not a number"),
        (
            "1,1,10,20,30,40,1\n1,1,11,20,30,40,1\n",
            r"gt.txt:2: field id: track 1 already has a box in frame 1 \(line 1\)",
        ),
        ("\n\n", r"gt.txt: no boxes"),
    ],
)
def test_errors_name_file_line_and_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TruthError, match=message):
        read_mot_truth(_write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TruthError, match="nope.txt: no such file"):
        read_mot_truth(tmp_path / "nope.txt")
