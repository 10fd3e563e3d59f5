"""
Segment a simulated field in a notebook
=======================================

Simulate a small field with exact truth, segment it with two methods, score them and look at
the result. Everything here runs on arrays in memory.
"""

# %%
# A 256² Euclid-like field, with its truth map and catalogue.
import matplotlib.pyplot as plt

import astrostatlearn

sim = astrostatlearn.simulate(256, seed=4)
print(sim)

# %%
# Segment it with sep (the classical baseline) and with the shipped U-Net.
sep = astrostatlearn.segment(sim.img, sim.rms, method="sep", wcs=sim.wcs)
unet = astrostatlearn.segment(sim.img, sim.rms, method="unet", wcs=sim.wcs)
print(sep)
print(unet)
print(unet.catalog["id", "x", "y", "flux", "score"][:5])

# %%
# Score both against the truth (objects match at IoU > 0.5).
for res in (sep, unet):
    ev = astrostatlearn.evaluate(sim, res, coco=False)
    print(res.params["method"], ev)

# %%
# The image with each method's objects outlined.
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
sim.plot(axes[0])
sep.plot(axes[1])
unet.plot(axes[2])
fig.tight_layout()
