"""Solvers of y = K x + e that the variational methods and the learned reconstructors share:
the iteration loop (`iterative`), per-sample reductions (`batch`), CGLS and CG on the normal
equations (`cgls`), and the filtered back-projection of a CT K (`fbp`). They know K alone;
the registered methods around them are in `invmap.variational`."""
