"""stars:trainstars — train a STARS model on paired rasters and labels."""
from __future__ import annotations

from pathlib import Path

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingParameterBoolean, QgsProcessingOutputNumber,
                       QgsProcessingParameterEnum, QgsProcessingParameterField, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterFolderDestination,
                       QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber, QgsProcessingParameterString,
                       QgsProcessingParameterFeatureSource)

from stars_core.config import (BACKBONES, CLASS_WEIGHTS, FREEZE, LR_FACTOR, MODES, DataConfig, LossConfig, StarsConfig,
                               TrainConfig)
from stars_core.weights.registry import ENTRIES

from .base import DEVICES, StarsAlgorithm, advanced, integers, polygon_file, raster_path

# "none", then each registry entry as "name (bands; licence)": the name is what the core reads
NAMED_WEIGHTS = ["none (or a file below)"] + [f"{e.name} ({e.arch}, {', '.join(e.bands[:4])}"
                                              f"{'...' if len(e.bands) > 4 else ''}; {e.licence.split(';')[0]})"
                                              for e in ENTRIES]


class TrainStars(StarsAlgorithm):
    M1 = "M1"
    M2 = "M2"
    LABELS = "LABELS"
    LABEL_POLYGONS = "LABEL_POLYGONS"
    CLASS_FIELD = "CLASS_FIELD"
    AOI = "AOI"
    CLASS_TABLE = "CLASS_TABLE"
    IGNORE_VALUES = "IGNORE_VALUES"
    OUTPUT = "OUTPUT"
    STEPS = "STEPS"
    BATCH_SIZE = "BATCH_SIZE"
    CHIP_SIZE = "CHIP_SIZE"
    LR = "LR"
    ALPHA = "ALPHA"
    BETA = "BETA"
    SAMPLES_PER_CLASS = "SAMPLES_PER_CLASS"
    TAU = "TAU"
    BACKBONE = "BACKBONE"
    ENCODER_WIDTH = "ENCODER_WIDTH"
    DEVICE = "DEVICE"
    SEED = "SEED"
    VAL_FRACTION = "VAL_FRACTION"
    MODE = "MODE"
    RESUME = "RESUME"
    PSA_EXCLUDE = "PSA_EXCLUDE"
    CHIP_FOLDER = "CHIP_FOLDER"
    SCENE_TABLE = "SCENE_TABLE"
    SKIP_BAD_SCENES = "SKIP_BAD_SCENES"
    PRETRAINED = "PRETRAINED"
    PRETRAINED_M1 = "PRETRAINED_M1"
    PRETRAINED_M2 = "PRETRAINED_M2"
    KEEP_BEST = "KEEP_BEST"
    INIT_FROM = "INIT_FROM"
    FREEZE = "FREEZE"
    CLASS_WEIGHTS = "CLASS_WEIGHTS"
    NAMED_M1 = "NAMED_M1"
    NAMED_M2 = "NAMED_M2"
    DIAGNOSTICS = "DIAGNOSTICS"
    VAL_MIOU = "VAL_MIOU"
    CPU_BF16 = "CPU_BF16"

    def name(self) -> str:
        return "trainstars"

    def displayName(self) -> str:  # noqa: N802
        return "Train STARS"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Trains a STARS model on co-registered modality-1 rasters (SAR or DSM) and modality-2 rasters "
            "(optical) with a land-cover label, so that land cover can later be mapped from modality 1 "
            "alone.<br><br>Give the rasters of each scene in the same order in both lists; labels as one "
            "label raster per scene, or one polygon layer with a class field (optical and labels are read on "
            "the SAR grid). Or: a scene table (CSV: m1, m2, labels), or a folder of paired chips (EarthMiss "
            "layout). A class table (CSV: value,name,color) names the classes; ignore values (e.g. 0) leave "
            "no-data out; an AOI limits where training chips come from.<br><br>The defaults are the paper's "
            "recipe (ResNet-50, 80,000 steps of 512-pixel chips: a GPU job); on a CPU use ResNet-18, a width of "
            "32 and a few thousand steps. The log shows the losses and the validation mIoU from modality 1 "
            "alone. Cancel keeps the last saved model, which 'Resume from' continues."
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.M1, "Modality-1 rasters (SAR or DSM), one per scene", QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.M2, "Modality-2 rasters (optical), same order", QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.CHIP_FOLDER, "Or: a chip folder (paired chips matched by name, EarthMiss layout)",
            behavior=QgsProcessingParameterFile.Behavior.Folder, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.SCENE_TABLE, "Or: a scene table (CSV: m1, m2, labels[, aoi, name])",
            optional=True, fileFilter="CSV (*.csv)"))
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.LABELS, "Label rasters, same order", QgsProcessing.SourceType.TypeRaster, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.LABEL_POLYGONS, "Or: label polygons (for all scenes)", [QgsProcessing.SourceType.TypeVectorPolygon],
            optional=True))
        self.addParameter(QgsProcessingParameterField(
            self.CLASS_FIELD, "Class field of the label polygons", parentLayerParameterName=self.LABEL_POLYGONS,
            optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            self.AOI, "Area of interest (optional)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.CLASS_TABLE, "Class table (CSV value,name,color or JSON)", optional=True,
            fileFilter="Class tables (*.csv *.json)"))
        self.addParameter(QgsProcessingParameterString(
            self.IGNORE_VALUES, "Label values to ignore (comma separated, e.g. 0)", optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "STARS model file", fileFilter="STARS model (*.stars)"))
        for p in self._advanced_parameters():
            self.addParameter(advanced(p))
        self.addOutput(QgsProcessingOutputNumber(self.VAL_MIOU, "Validation mIoU (modality 1 alone)"))

    def _advanced_parameters(self) -> tuple:
        """The recipe, the model and the machine: folded under Advanced in the dialog."""
        num, flt = QgsProcessingParameterNumber.Type.Integer, QgsProcessingParameterNumber.Type.Double
        m, loss, t, d = StarsConfig(), LossConfig(), TrainConfig(), DataConfig()
        return (
            QgsProcessingParameterNumber(self.STEPS, "Training steps (the paper: 80,000 on a GPU)", num, t.steps,
                                         minValue=1),
            QgsProcessingParameterNumber(self.BATCH_SIZE, "Batch size", num, t.batch_size, minValue=1),
            QgsProcessingParameterNumber(self.CHIP_SIZE, "Chip size (pixels, multiple of 32)", num, d.chip_size,
                                         minValue=32),
            QgsProcessingParameterNumber(self.LR, "Learning rate", flt, t.lr, minValue=1e-8),
            QgsProcessingParameterNumber(self.ALPHA, "alpha (weight of the pixel contrastive loss)", flt, loss.alpha,
                                         minValue=0),
            QgsProcessingParameterNumber(self.BETA, "beta (weight of the translation loss)", flt, loss.beta, minValue=0),
            QgsProcessingParameterNumber(self.SAMPLES_PER_CLASS, "Pixels sampled per class (N)", num, loss.n_samples,
                                         minValue=1),
            QgsProcessingParameterNumber(self.TAU, "Contrastive temperature (tau)", flt, loss.tau, minValue=1e-4),
            QgsProcessingParameterEnum(self.BACKBONE, "Backbone", BACKBONES, defaultValue=BACKBONES.index(m.backbone)),
            QgsProcessingParameterNumber(self.ENCODER_WIDTH, "Backbone width (64 = standard)", num, m.encoder_width,
                                         minValue=8),
            QgsProcessingParameterEnum(self.DEVICE, "Device", DEVICES, defaultValue=DEVICES.index(t.device)),
            QgsProcessingParameterNumber(self.SEED, "Random seed", num, t.seed, minValue=0),
            QgsProcessingParameterNumber(self.VAL_FRACTION, "Validation fraction", flt, d.val_fraction, minValue=0,
                                         maxValue=0.9),
            QgsProcessingParameterEnum(self.MODE, "Model (stars, or a baseline)", MODES, defaultValue=MODES.index(m.mode)),
            QgsProcessingParameterFile(self.RESUME, "Resume from model file", optional=True,
                                       fileFilter="STARS model (*.stars)"),
            QgsProcessingParameterEnum(self.CLASS_WEIGHTS, "Class weights of the segmentation loss (none: the "
                                       "paper's)", list(CLASS_WEIGHTS), defaultValue=0),
            QgsProcessingParameterFile(self.INIT_FROM, "Start from a trained model (fine-tune it to this area)",
                                       optional=True, fileFilter="STARS model (*.stars)"),
            QgsProcessingParameterEnum(self.FREEZE, "When fine-tuning, freeze", list(FREEZE), defaultValue=0),
            QgsProcessingParameterBoolean(self.KEEP_BEST, "Keep the best validation weights too (segmentation uses "
                                          "them)", defaultValue=False),
            QgsProcessingParameterBoolean(self.CPU_BF16, "On a CPU with AMX or AVX-512 BF16: train in bf16 "
                                          "(about 1.6x faster, a little less accurate)", defaultValue=False),
            QgsProcessingParameterBoolean(self.SKIP_BAD_SCENES, "Skip scenes that fail to open or align (listed "
                                          "in the log and the model file)", defaultValue=False),
            QgsProcessingParameterString(self.PSA_EXCLUDE, "Class values left out of PSA sampling (comma "
                                         "separated; the paper leaves out background)", optional=True),
            QgsProcessingParameterEnum(self.NAMED_M1, "Pretrained modality-1 encoders, by name (downloaded once)",
                                       NAMED_WEIGHTS, defaultValue=0),
            QgsProcessingParameterEnum(self.NAMED_M2, "Pretrained modality-2 encoders, by name (downloaded once)",
                                       NAMED_WEIGHTS, defaultValue=0),
            QgsProcessingParameterFile(self.PRETRAINED, "Pretrained ResNet weights, all encoders", optional=True,
                                       fileFilter="PyTorch weights (*.pth *.pt)"),
            QgsProcessingParameterFile(self.PRETRAINED_M1, "Pretrained weights, modality-1 encoders (e.g. SAR)",
                                       optional=True, fileFilter="PyTorch weights (*.pth *.pt)"),
            QgsProcessingParameterFile(self.PRETRAINED_M2, "Pretrained weights, modality-2 encoders (e.g. ImageNet)",
                                       optional=True, fileFilter="PyTorch weights (*.pth *.pt)"),
            QgsProcessingParameterFolderDestination(self.DIAGNOSTICS, "Diagnostics folder (PNGs)", optional=True,
                                                    createByDefault=False),
        )

    def settings(self, parameters, context) -> tuple[StarsConfig, LossConfig, TrainConfig, DataConfig]:
        """The configurations the dialog's values describe: the same recipe as `stars train`
        (`TrainConfig.for_steps`)."""
        num = lambda key: self.parameterAsInt(parameters, key, context)  # noqa: E731
        dbl = lambda key: self.parameterAsDouble(parameters, key, context)  # noqa: E731
        enum = lambda key, options: options[self.parameterAsEnum(parameters, key, context)]  # noqa: E731
        model_cfg = StarsConfig(backbone=enum(self.BACKBONE, BACKBONES), mode=enum(self.MODE, MODES),
                                encoder_width=num(self.ENCODER_WIDTH))
        loss_cfg = LossConfig(alpha=dbl(self.ALPHA), beta=dbl(self.BETA), n_samples=num(self.SAMPLES_PER_CLASS),
                              tau=dbl(self.TAU), psa_exclude=tuple(integers(
                                  self.parameterAsString(parameters, self.PSA_EXCLUDE, context), "PSA exclusions")),
                              class_weights=enum(self.CLASS_WEIGHTS, CLASS_WEIGHTS))
        lr = dbl(self.LR)
        if self.parameterAsFile(parameters, self.INIT_FROM, context) and lr == TrainConfig().lr:
            lr *= LR_FACTOR  # fine-tuning's default, as `stars train --init-from`
        train_cfg = TrainConfig.for_steps(num(self.STEPS), batch_size=num(self.BATCH_SIZE), lr=lr,
                                          seed=num(self.SEED), device=enum(self.DEVICE, DEVICES), num_workers=0,
                                          keep_best=self.parameterAsBool(parameters, self.KEEP_BEST, context),
                                          cpu_bf16=self.parameterAsBool(parameters, self.CPU_BF16, context))
        data_cfg = DataConfig(
            chip_size=num(self.CHIP_SIZE), val_fraction=dbl(self.VAL_FRACTION),
            class_table=self.parameterAsFile(parameters, self.CLASS_TABLE, context) or None,
            ignore_values=tuple(integers(self.parameterAsString(parameters, self.IGNORE_VALUES, context),
                                         "ignore values")),
            aoi=self.aoi(parameters, context),
            skip_bad_scenes=self.parameterAsBool(parameters, self.SKIP_BAD_SCENES, context))
        return model_cfg, loss_cfg, train_cfg, data_cfg

    def aoi(self, parameters, context) -> str | None:
        return polygon_file(self, parameters, self.AOI, context)  # the selected features, if so asked

    def scenes(self, parameters, context) -> list:
        from stars_core.training.chips import ChipFolder
        from stars_core.training.data import SceneSpec

        table = self.parameterAsFile(parameters, self.SCENE_TABLE, context)
        if table:
            from stars_core.training.data import read_scene_table

            return read_scene_table(table, self.parameterAsString(parameters, self.CLASS_FIELD, context) or None)
        chips = self.parameterAsFile(parameters, self.CHIP_FOLDER, context)
        if chips:
            if self.parameterAsLayerList(parameters, self.M1, context):
                raise QgsProcessingException("give scene rasters or a chip folder, not both")
            return ChipFolder(chips).scenes()

        m1 = [raster_path(l, "modality-1 raster") for l in self.parameterAsLayerList(parameters, self.M1, context)]
        if not m1:
            raise QgsProcessingException("give modality-1, modality-2 and label rasters per scene, or a chip folder")
        m2 = [raster_path(l, "modality-2 raster") for l in self.parameterAsLayerList(parameters, self.M2, context)]
        labels = [raster_path(l, "label raster") for l in self.parameterAsLayerList(parameters, self.LABELS, context)]
        polygons = polygon_file(self, parameters, self.LABEL_POLYGONS, context)
        field = self.parameterAsString(parameters, self.CLASS_FIELD, context) or None
        if polygons is not None:
            if labels:
                raise QgsProcessingException("give label rasters or label polygons, not both")
            if not field:
                raise QgsProcessingException("label polygons need a class field")
            labels = [polygons] * len(m1)
        if len(m2) != len(m1) or len(labels) != len(m1):
            raise QgsProcessingException(
                f"give one optical raster and one label per SAR raster, in the same order (got {len(m1)} "
                f"modality-1, {len(m2)} modality-2 rasters and {len(labels)} labels)")
        return [SceneSpec(a, b, c, field) for a, b, c in zip(m1, m2, labels)]

    def execute(self, parameters, context, feedback) -> dict:
        from stars_core.training.train import train

        scenes = self.scenes(parameters, context)
        model_cfg, loss_cfg, train_cfg, data_cfg = self.settings(parameters, context)
        out = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        resume = self.parameterAsFile(parameters, self.RESUME, context) or None
        diagnostics = self.parameterAsString(parameters, self.DIAGNOSTICS, context) or None
        every = max(1, train_cfg.steps // 50)

        def progress(step: int, total: int, row: dict) -> None:
            feedback.setProgress(100.0 * step / total)
            if step % every == 0 or step == total:
                feedback.pushInfo(f"step {step}/{total}: " + ", ".join(
                    f"{k} {row[k]:.4f}" for k in ("total", "seg", "psc", "ncs") if k in row))

        weights = {key.lower(): self.parameterAsFile(parameters, getattr(self, key), context) or None
                   for key in ("PRETRAINED", "PRETRAINED_M1", "PRETRAINED_M2")}
        for key, named in (("pretrained_m1", self.NAMED_M1), ("pretrained_m2", self.NAMED_M2)):
            choice = self.parameterAsEnum(parameters, named, context)
            if choice:
                if weights[key]:
                    raise QgsProcessingException(f"give the {key[-2:]} weights by name or as a file, not both")
                weights[key] = NAMED_WEIGHTS[choice].split(" ")[0]
        init_from = self.parameterAsFile(parameters, self.INIT_FROM, context) or None
        freeze = FREEZE[self.parameterAsEnum(parameters, self.FREEZE, context)]
        result = train(scenes, out, model_cfg, loss_cfg, train_cfg, data_cfg, resume=resume, progress=progress,
                       cancel=feedback.isCanceled, log=self.log(feedback), diagnostics=diagnostics,
                       init_from=init_from, freeze=freeze, **weights)
        miou = (result.summary.get("validation") or {}).get("val_m1_miou")
        outputs = {self.OUTPUT: str(result.path), self.VAL_MIOU: float("nan") if miou is None else miou}
        if diagnostics and Path(diagnostics).is_dir():  # none without validation chips (the log says so)
            outputs[self.DIAGNOSTICS] = diagnostics
        return outputs
