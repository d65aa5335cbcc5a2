import gymnasium

import abgym
from abgym.cli import main
from abgym.envs.registration import env_ids


def test_import_registers_every_env_id():
    for env_id in env_ids():
        assert env_id in gymnasium.registry, env_id
    assert "abgym/ABTest-v0" in env_ids()


def test_cli_lists_envs(capsys):
    assert main(["envs"]) == 0
    assert capsys.readouterr().out.split() == env_ids()


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    from abgym.paths import atomic_write

    target = tmp_path / "cache.bin"
    try:
        with atomic_write(target) as handle:
            handle.write(b"partial")
            raise RuntimeError("interrupted")
    except RuntimeError:
        pass
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as handle:
        handle.write(b"whole")
    assert target.read_bytes() == b"whole"


def test_atomic_write_gives_usual_permissions(tmp_path):
    import os
    import stat

    from abgym.paths import atomic_write

    target = tmp_path / "model.zip"
    with atomic_write(target) as handle:
        handle.write(b"x")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
