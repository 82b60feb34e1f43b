"""Trainers of the mini model zoo (autoencoder, mini CLIP, text-conditioned UNet);
``train_zoo`` runs all three.

Nothing heavy is imported here: ``from neuraldiffuser.zoo.train.pipeline import train_zoo``.
"""
