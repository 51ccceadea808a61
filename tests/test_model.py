import pickle

import pytest
import torch
from safetensors.torch import save_file

from robustdf.train.model import build_model, load_checkpoint, predict_fake_proba, read_state_dict, save_checkpoint
from robustdf.runtime import DataError

ARCH = "efficientnet_b0"


def test_normalisation_lives_inside_the_model():
    m = build_model(ARCH).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = m.backbone((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                              / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        assert torch.allclose(m(x), expected)
    p = predict_fake_proba(m, x, 1, torch.device("cpu"))
    assert p.shape == (2,) and ((p >= 0) & (p <= 1)).all()


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = build_model(ARCH)
    with torch.no_grad():
        m.backbone.classifier.weight.normal_()
    m.eval()
    save_checkpoint(m, tmp_path, {"arch": ARCH, "epoch": 3})
    m2, cfg = load_checkpoint(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert cfg["epoch"] == 3


def test_missing_and_tampered_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="config.json does not exist"):
        load_checkpoint(tmp_path)
    save_checkpoint(build_model(ARCH), tmp_path, {"arch": ARCH})
    weights = tmp_path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[:8] = b"\xff" * 8  # corrupt the header length
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="model.safetensors"):
        load_checkpoint(tmp_path)
    save_file({"stem.weight": torch.zeros(1)}, str(weights))  # wrong contents
    with pytest.raises(DataError, match="does not match architecture"):
        load_checkpoint(tmp_path)


class Evil:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['EVIL_MARK'], 'w').write('pwned')",))


def test_malicious_pickle_is_refused_without_executing(tmp_path, monkeypatch):
    mark = tmp_path / "executed"
    monkeypatch.setenv("EVIL_MARK", str(mark))
    evil = tmp_path / "weights.pth"
    evil.write_bytes(pickle.dumps({"state_dict": Evil()}))
    with pytest.raises(DataError, match="weights.pth"):
        read_state_dict(evil)
    torch.save({"state_dict": Evil()}, tmp_path / "evil_zip.pth")
    with pytest.raises(DataError, match="evil_zip.pth"):
        read_state_dict(tmp_path / "evil_zip.pth")
    assert not mark.exists()


def test_pretrained_weights_local_file_only(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        build_model(ARCH, str(tmp_path / "nope.safetensors"))
    donor = build_model(ARCH)
    state = {k: v for k, v in donor.backbone.state_dict().items()}
    save_file(state, str(tmp_path / "ok.safetensors"))
    m = build_model(ARCH, str(tmp_path / "ok.safetensors"))
    assert torch.equal(m.backbone.conv_stem.weight, donor.backbone.conv_stem.weight)
    resnet = build_model("resnet18").backbone.state_dict()
    save_file({k: v.contiguous() for k, v in resnet.items()}, str(tmp_path / "wrong.safetensors"))
    with pytest.raises(DataError, match="do not match the architecture"):
        build_model(ARCH, str(tmp_path / "wrong.safetensors"))
