"""Input variants (raw, norm, soft, soft+rms, soft+rms+log, snr, summed) from global statistics."""

from astrostatlearn.preprocess.run import preprocess_field, write_preview
from astrostatlearn.preprocess.stats import GlobalStats, global_stats
from astrostatlearn.preprocess.variants import STRETCHES, VARIANTS, Preprocessor, channel0_is_image, fit_variant

__all__ = ["GlobalStats", "Preprocessor", "STRETCHES", "VARIANTS", "channel0_is_image", "fit_variant", "global_stats",
           "preprocess_field", "write_preview"]
