"""Mini model zoo: train the small Stable-Diffusion-shaped stack on an image+caption dataset."""

from __future__ import annotations

import typer

from .common import not_built

app = typer.Typer(help=__doc__, no_args_is_help=True)


@app.command("train")
def train(ctx: typer.Context) -> None:
    """Train the autoencoder, the mini CLIP and the text-conditioned UNet.

    Reads: DATASET images and captions. Writes: OUT with one safetensors folder per component.
    """
    not_built("zoo train", 4)
