"""STARS model parts: ResNet encoders, SCSE fusion, FPN decoders, translation modules, wiring."""
from .fpn import FPNDecoder
from .fusion import SCSE, FusionModule
from .resnet import ResNet, ResNetStem, adapt_first_conv, load_pretrained
from .stars import ConcatModel, PairOutput, SingleModel, StarsModel, build_model, check_input, pretrained_plan
from .translation import TranslationModule

__all__ = [
    "FPNDecoder", "SCSE", "FusionModule", "ResNet", "ResNetStem", "adapt_first_conv", "load_pretrained",
    "ConcatModel", "PairOutput", "SingleModel", "StarsModel", "build_model", "check_input", "pretrained_plan",
    "TranslationModule",
]
