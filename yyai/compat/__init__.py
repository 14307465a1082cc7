"""Other wire protocols, each a thin layer over the same services: the seed's routes, ..."""
