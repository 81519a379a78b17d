"""The bottom module: error hierarchy and device choice."""
import pytest
import torch

from stars_core.devices import autocast, check_device, resolve_device

from stars_core.errors import Cancelled, InputError, StarsError, TrainingError


def test_errors_share_one_base_and_input_errors_stay_value_errors():
    assert all(issubclass(e, StarsError) for e in (InputError, TrainingError, Cancelled))
    assert issubclass(InputError, ValueError) and issubclass(TrainingError, RuntimeError)
    assert not issubclass(Cancelled, (ValueError, RuntimeError))  # never mistaken for bad input


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU", ""])
def test_unknown_devices_are_refused_with_the_choices(name):
    with pytest.raises(InputError, match="auto, cpu, cuda or cuda:N"):
        check_device(name)


def test_resolve_device_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="sees no CUDA GPU; use --device cpu or auto"):
        resolve_device("cuda:0")


def test_autocast_is_a_no_op_on_cpu():
    with autocast(torch.device("cpu"), True):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32
