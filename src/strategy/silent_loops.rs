//! The loops of a script that can spin without reading a variable, found in its syntax tree.
//!
//! The sandbox's operation watchdog (sandbox.rs) raises its positioned error on a variable
//! read, so a loop that reads none (`while true {}`) runs on into Rhai's own backstop limit.
//! Rhai cannot say where that happened: an empty loop body calls no hook at all, and the
//! backstop error, a "system" error, takes the position of each call it leaves, ending with the
//! host's call of `select`, which has none. So the message names these loops instead; the
//! backstop leaves thousands of operations without a variable read after the limit, so one of
//! them is where the script was.
use rhai::{ASTNode, Expr, Position, Stmt, AST};
use std::collections::HashMap;

/// Positions of the `loop`, `while`, `do` and `for` statements in `ast` (functions included)
/// whose condition and body read no variable, in source order. Qualified names (`m::X`) are not
/// variable reads (the watchdog never sees them); a `for` loop's iterable runs once, so a read
/// there does not count either.
pub fn loops_reading_no_variable(ast: &AST) -> Vec<Position> {
    // Every loop, by address, with its position and whether its condition or body reads.
    let mut loops: HashMap<*const Stmt, (Position, bool)> = HashMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(s @ (Stmt::While(..) | Stmt::Do(..) | Stmt::For(..)))) => {
                loops.insert(*s as *const Stmt, (s.position(), false));
            }
            Some(ASTNode::Expr(Expr::Variable(v, ..))) if v.2.is_empty() => {
                for (depth, node) in path.iter().enumerate() {
                    let ASTNode::Stmt(s) = node else { continue };
                    if iterable_of(s, path.get(depth + 1)) {
                        continue;
                    }
                    if let Some(entry) = loops.get_mut(&(*s as *const Stmt)) {
                        entry.1 = true;
                    }
                }
            }
            _ => {}
        }
        true
    });
    let mut silent: Vec<Position> = loops
        .into_values()
        .filter(|&(_, reads)| !reads)
        .map(|(pos, _)| pos)
        .collect();
    silent.sort_by_key(|p| (p.line(), p.position()));
    silent
}

/// Is `child` the iterable of the `for` statement `s` (evaluated once, not per iteration)?
fn iterable_of(s: &Stmt, child: Option<&ASTNode>) -> bool {
    match (s, child) {
        (Stmt::For(x, _), Some(ASTNode::Expr(e))) => std::ptr::eq(*e, &x.2.expr),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(script: &str) -> Vec<(usize, usize)> {
        let ast = rhai::Engine::new().compile(script).unwrap();
        loops_reading_no_variable(&ast)
            .into_iter()
            .map(|p| (p.line().unwrap(), p.position().unwrap()))
            .collect()
    }

    #[test]
    fn finds_loops_whose_condition_and_body_read_nothing() {
        let script = "fn f(n) {\n  while true {}\n  let i = 0;\n  while i < n { i += 1; }\n}\n\
                      fn g() {\n  loop { 1 + 2; }\n}\n\
                      do { } while true;\n\
                      for x in range(0, 10) { }\n";
        assert_eq!(lines(script), vec![(2, 3), (7, 3), (9, 1), (10, 1)]);
    }

    #[test]
    fn a_read_in_the_iterable_does_not_count_but_one_in_a_nested_loop_does() {
        let script = "let n = 10;\nfor x in range(0, n) { }\n\
                      loop {\n  let a = 1;\n  loop { a += 1; }\n}\n\
                      loop { loop { } }\n";
        assert_eq!(lines(script), vec![(2, 1), (7, 1), (7, 8)]);
    }
}
