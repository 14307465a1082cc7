"""The benchmark's peer servers: the seed's design and LitServe, on the same models."""
