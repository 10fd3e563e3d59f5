"""Training: the shared loop (:func:`fit`) and the U-Net trainer."""

from astrostatlearn.training.loop import EpochStats, TrainConfig, fit, seed_everything
from astrostatlearn.training.unet import train_unet, unet_loss

__all__ = ["EpochStats", "TrainConfig", "fit", "seed_everything", "train_unet", "unet_loss"]
