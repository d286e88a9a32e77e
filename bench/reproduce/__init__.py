"""``bench reproduce``: a paper's experiments on a real model as one resumable, staged study."""
