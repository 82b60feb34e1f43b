"""Target features (z, c, g) per stimulus image, and the store that holds them."""
