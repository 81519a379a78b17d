"""Training a STARS model: the loop (`train`), the paired rasters and chip folders it reads (`data`,
`chips`), the losses (`losses`), fine-tuning from another model file (`finetune`), BatchNorm
statistics recomputed for older files (`recalibrate`) and what the run logs about alignment
(`diagnostics`)."""
