//! Native kernels for the heavy parts of strategies.
//!
//! Conventions shared by every kernel:
//! - Embedding rows are L2-normalised, so a dot product is a cosine.
//! - Ties are broken by the lower index (pool position), everywhere; scores equal up to the
//!   rounding of their f32 sums count as ties (ties.rs).
//! - Results are deterministic: parallel loops split work at fixed positions and every
//!   reduction runs in a fixed order, so the thread count never changes an answer.
//! - Nothing holds a `|U| × |U|` matrix: products run in tiles of a few MiB.
pub mod bench;
pub mod bleu_pairs;
pub mod cosine;
pub mod dense;
pub mod facility_location;
pub mod fx_hash;
pub mod graph_cut;
pub mod idds;
pub mod jsd;
pub mod k_center;
pub mod kmeans;
pub mod knn;
mod knn_clustered;
mod lazy_greedy;
pub mod ngrams;
pub mod synthetic;
mod ties;

pub use bleu_pairs::bleu_variance;
pub use cosine::{cosine_block, max_similarity_to};
pub use dense::matvec;
pub use facility_location::{facility_location_greedy, FacilityLocationOptions};
pub use graph_cut::graph_cut_greedy;
pub use idds::idds_greedy;
pub use jsd::jensen_shannon;
pub use k_center::k_center_greedy;
pub use kmeans::{kmeans, nearest_to_centroids, KMeansResult};
pub use ngrams::{count_ngrams, delfy_scores, ngf_smp_greedy, NgramCounts};
