"""``hf-ada enable`` / ``hf-ada disable`` install and remove the start-up hook, and say what they did."""

from __future__ import annotations

from hf_ada import cli


def test_enable_then_disable_in_a_site_folder(tmp_path, capsys):
    from hf_ada.optim import startup

    assert cli.main(["enable", "--site-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    hook = tmp_path / startup.PTH_NAME
    assert hook.is_file() and str(hook) in out and "hf-ada disable" in out
    assert startup.is_enabled(tmp_path)
    assert cli.main(["disable", "--site-dir", str(tmp_path)]) == 0
    assert "removed the start-up hook" in capsys.readouterr().out and not hook.exists()
    assert cli.main(["disable", "--site-dir", str(tmp_path)]) == 0
    assert "nothing to disable" in capsys.readouterr().out


def test_enable_refuses_unknown_flags_in_one_line(capsys):
    assert cli.main(["enable", "--everywhere"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--everywhere" in err
