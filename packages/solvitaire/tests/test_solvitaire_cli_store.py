import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from solvitaire import game_names, winnability
from solvitaire.cli import main

SMALL = {
    "tableau piles": {"count": 5, "build policy": "no-build"},
    "foundations": {"present": False},
    "hole": {"present": True},
    "max rank": 4,
}


def test_cli_commands(capsys, tmp_path):
    assert main(["games"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(game_names())
    assert main(["describe", "klondike"]) == 0
    assert "red-black" in capsys.readouterr().out
    assert main(["deal", "--game", "golf", "--seed", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hole"]
    assert main(["solve", "--game", "golf", "--seed", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] in ("solved", "unsolvable")
    if out["status"] == "solved":
        f = tmp_path / "sol.json"
        f.write_text(json.dumps(out))
        assert main(["verify", str(f)]) == 0
        assert "OK" in capsys.readouterr().out


def test_cli_bad_input_one_line(capsys, tmp_path):
    assert main(["solve", "--game", "no-such-game"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("solvitaire: error: unknown game")
    assert "\n" not in err
    bad = tmp_path / "r.json"
    bad.write_text('{"tableau piles": {"count": "seven"}}')
    assert main(["describe", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert "tableau piles.count" in err
    assert "\n" not in err


def test_winnability_store_resume(tmp_path):
    db = tmp_path / "run.sqlite"
    a = winnability(SMALL, seeds=range(20), store=db, progress=False)
    b = winnability(SMALL, seeds=range(30), store=db, progress=False)  # 20 reused
    c = winnability(SMALL, seeds=range(30), progress=False)
    assert (b.solved, b.unsolvable, b.timeouts) == (c.solved, c.unsolvable, c.timeouts)
    assert a.n == 20
    rows = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
    assert rows == 30
    lo, hi = c.interval
    assert lo <= c.rate <= hi


@pytest.mark.slow
def test_sigkill_half_way_then_resume(tmp_path):
    rules = tmp_path / "small.json"
    rules.write_text(json.dumps(SMALL))
    db = tmp_path / "run.sqlite"
    cmd = [
        sys.executable,
        "-m",
        "solvitaire.cli",
        "winnability",
        "--rules",
        str(rules),
        "--deals",
        "400",
        "--timeout",
        "5",
        "--store",
        str(db),
    ]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    n = 0
    while time.time() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                n = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                continue
            if n >= 50:
                break
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert 0 < n < 400
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    con = sqlite3.connect(db)
    stored = dict(con.execute("SELECT status, COUNT(*) FROM results GROUP BY status").fetchall())
    fresh = winnability(str(rules), seeds=range(1, 401), progress=False)
    assert sum(stored.values()) == 400
    assert stored.get("solved", 0) == fresh.solved
    assert stored.get("unsolvable", 0) == fresh.unsolvable
