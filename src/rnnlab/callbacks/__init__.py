"""Lightning callbacks of rnnlab's own; conf/callbacks/<name>.yaml points at each."""
