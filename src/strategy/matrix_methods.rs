//! `Matrix` as scripts see it: shape, rows and columns, row selection and the similarity
//! methods (cosine, best similarity to another set, mean Jensen–Shannon divergence), each
//! running natively on the whole matrix.
use crate::strategy::types::*;
use crate::strategy::Matrix;
use rhai::{Array, Engine, INT};

pub fn register_matrix(engine: &mut Engine) {
    engine.register_type_with_name::<MatrixRef>("Matrix");
    engine
        .register_fn("rows", |m: &mut MatrixRef| m.0.rows as INT)
        .register_fn("cols", |m: &mut MatrixRef| m.0.cols as INT)
        .register_fn("len", |m: &mut MatrixRef| m.0.rows as INT)
        .register_fn("row", |m: &mut MatrixRef, i: INT| -> RhaiResult<FloatVec> {
            let i = position(i, m.0.rows, "Matrix.row")?;
            Ok(FloatVec::new(
                m.0.row(i).iter().map(|&x| x as f64).collect(),
            ))
        })
        .register_fn(
            "column",
            |m: &mut MatrixRef, j: INT| -> RhaiResult<FloatVec> {
                let j = position(j, m.0.cols, "Matrix.column")?;
                Ok(FloatVec::new(
                    (0..m.0.rows).map(|i| m.0.row(i)[j] as f64).collect(),
                ))
            },
        )
        .register_fn(
            "take",
            |m: &mut MatrixRef, idx: IntVec| -> RhaiResult<MatrixRef> {
                let p = positions(&idx, m.0.rows, "Matrix.take")?;
                Ok(MatrixRef::new(m.0.take_rows(&p)))
            },
        )
        .register_fn("mean_rows", |m: &mut MatrixRef| {
            let mut out = vec![0f32; m.0.cols];
            for i in 0..m.0.rows {
                for (o, x) in out.iter_mut().zip(m.0.row(i)) {
                    *o += x;
                }
            }
            let n = m.0.rows.max(1) as f32;
            out.iter_mut().for_each(|o| *o /= n);
            MatrixRef::new(Matrix {
                rows: 1,
                cols: m.0.cols,
                data: out,
            })
        })
        .register_fn("normalize", |m: &mut MatrixRef| {
            let mut c = m.0.as_ref().clone();
            c.l2_normalize_rows();
            MatrixRef::new(c)
        })
        .register_fn("row_means", |m: &mut MatrixRef| {
            FloatVec::new(
                (0..m.0.rows)
                    .map(|i| {
                        m.0.row(i).iter().map(|&x| x as f64).sum::<f64>() / m.0.cols.max(1) as f64
                    })
                    .collect(),
            )
        })
        // Rows are items, columns are the given vectors.
        .register_fn("stack_columns", |cols: Array| -> RhaiResult<MatrixRef> {
            let cols: Vec<FloatVec> = cols
                .into_iter()
                .map(|d| {
                    d.try_cast::<FloatVec>()
                        .ok_or_else(|| "stack_columns: expected an array of FloatVec".into())
                })
                .collect::<RhaiResult<_>>()?;
            let rows = cols.first().map_or(0, |c| c.0.len());
            if cols.iter().any(|c| c.0.len() != rows) {
                return err("stack_columns: the vectors differ in length");
            }
            let mut data = Vec::with_capacity(rows * cols.len());
            for i in 0..rows {
                data.extend(cols.iter().map(|c| c.0[i] as f32));
            }
            Ok(MatrixRef::new(Matrix {
                rows,
                cols: cols.len(),
                data,
            }))
        })
        .register_fn("to_string", |m: &mut MatrixRef| {
            format!("Matrix({}×{})", m.0.rows, m.0.cols)
        })
        .register_fn("to_debug", |m: &mut MatrixRef| {
            format!("Matrix({}×{})", m.0.rows, m.0.cols)
        });
}
