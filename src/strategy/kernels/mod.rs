//! Native kernels for the heavy parts of strategies.
