"""The model zoo: ``create(name, num_classes=10, in_channels=3, **kwargs)`` builds a registered network.

Every model is a plain ``nn.Module`` made of standard layers, carries ``netslim_recipe`` (its name and
arguments, JSON-serializable) so checkpoints can rebuild it, and accepts ``input_size`` so it runs on
1x28x28 and 3x32x32 inputs. ``list_models()`` names them; ``register_model`` adds your own;
``resolve(spec, ...)`` also builds models from ``path/to/file.py:factory`` and
``package.module:factory`` specs.
"""

from __future__ import annotations

# importing the family modules registers their models
from netslim.models import densenet, fc_nets, lenet, mobilenetv2, preresnet, resnet, vgg  # noqa: F401
from netslim.models.registry import (
    MODELS,
    ModelEntry,
    Registry,
    check_spec,
    create,
    create_from_recipe,
    list_models,
    register_model,
    resolve,
)

__all__ = [
    "MODELS",
    "ModelEntry",
    "Registry",
    "check_spec",
    "create",
    "create_from_recipe",
    "list_models",
    "register_model",
    "resolve",
]
