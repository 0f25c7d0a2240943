//! The part of minijinja's language an email template may use, checked on the
//! parsed template before anything is compiled or run.
//!
//! Fuel counts instructions, not bytes: one `~`, `*` or `join` can double or
//! multiply a string, and minijinja folds constant expressions while it
//! *compiles*, so `{{ "x" * 99999999 ~ "x" * 99999999 ~ … }}` would allocate
//! gigabytes before the first instruction ran. What is refused is what lets a
//! template build values larger than its source and its context:
//!
//! - statements that bind or capture values (`set`, `with`, `filter` blocks,
//!   macros and `call`), template loading (`include`, `import`, `extends`,
//!   `block`) and `do`;
//! - the string- and list-building operators `~`, `+`, `*` and `**`;
//! - filters other than [`FILTERS`], none of which makes its input grow
//!   more than a few times; calls other than `range(…)` (capped by the
//!   renderer) and `loop.cycle(…)` / `loop.changed(…)`;
//! - recursive `for` loops.
//!
//! What remains (output, `if`, `for` over context values, lists and ranges,
//! tests, comparisons, attribute and item access, the listed filters) cannot
//! make a value much larger than the largest input, so fuel and the output
//! cap bound what a render costs. Nothing here runs the template.

use minijinja::machinery::{self, ast};

/// Filters a template may apply.
pub const FILTERS: &[&str] = &[
    "abs",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "e",
    "escape",
    "first",
    "float",
    "int",
    "last",
    "length",
    "lower",
    "reverse",
    "round",
    "safe",
    "title",
    "trim",
    "upper",
];

/// Checks that `source` parses and stays within the subset; the error names
/// what was found and where (it completes "the template …").
pub fn check(source: &str) -> Result<(), String> {
    let parsed = machinery::parse(source, "template", Default::default(), Default::default())
        .map_err(|err| format!("is not a valid template: {err}"))?;
    stmt(&parsed)
}

fn refuse(what: &str, line: u16) -> Result<(), String> {
    Err(format!(
        "uses {what} (line {line}), which email templates cannot use; write the output with \
         `{{{{ … }}}}`, `{{% if %}}` and `{{% for %}}` and the filters {}",
        FILTERS.join(", ")
    ))
}

fn stmts(list: &[ast::Stmt<'_>]) -> Result<(), String> {
    list.iter().try_for_each(stmt)
}

fn stmt(node: &ast::Stmt<'_>) -> Result<(), String> {
    use ast::Stmt;
    match node {
        Stmt::Template(t) => stmts(&t.children),
        Stmt::EmitRaw(_) => Ok(()),
        Stmt::EmitExpr(e) => expr(&e.expr),
        Stmt::IfCond(c) => {
            expr(&c.expr)?;
            stmts(&c.true_body)?;
            stmts(&c.false_body)
        }
        Stmt::ForLoop(f) => {
            if f.recursive {
                return refuse("a recursive `for` loop", f.span().start_line);
            }
            expr(&f.iter)?;
            if let Some(filter) = &f.filter_expr {
                expr(filter)?;
            }
            stmts(&f.body)?;
            stmts(&f.else_body)
        }
        Stmt::AutoEscape(a) => {
            expr(&a.enabled)?;
            stmts(&a.body)
        }
        Stmt::Set(s) => refuse("`{% set %}`", s.span().start_line),
        Stmt::SetBlock(s) => refuse("`{% set %}…{% endset %}`", s.span().start_line),
        Stmt::WithBlock(s) => refuse("`{% with %}`", s.span().start_line),
        Stmt::FilterBlock(s) => refuse("`{% filter %}`", s.span().start_line),
        Stmt::Block(s) => refuse("`{% block %}`", s.span().start_line),
        Stmt::Import(s) => refuse("`{% import %}`", s.span().start_line),
        Stmt::FromImport(s) => refuse("`{% from … import %}`", s.span().start_line),
        Stmt::Extends(s) => refuse("`{% extends %}`", s.span().start_line),
        Stmt::Include(s) => refuse("`{% include %}`", s.span().start_line),
        Stmt::Macro(s) => refuse("a macro", s.span().start_line),
        Stmt::CallBlock(s) => refuse("`{% call %}`", s.span().start_line),
        Stmt::Do(s) => refuse("`{% do %}`", s.span().start_line),
        // Statements of features this build does not enable (loop controls).
        #[allow(unreachable_patterns)]
        _ => refuse("a statement outside the email subset", 0),
    }
}

fn args(list: &[ast::CallArg<'_>]) -> Result<(), String> {
    list.iter().try_for_each(|arg| match arg {
        ast::CallArg::Pos(e)
        | ast::CallArg::Kwarg(_, e)
        | ast::CallArg::PosSplat(e)
        | ast::CallArg::KwargSplat(e) => expr(e),
    })
}

fn expr(node: &ast::Expr<'_>) -> Result<(), String> {
    use ast::{BinOpKind, Expr};
    match node {
        Expr::Var(_) | Expr::Const(_) => Ok(()),
        Expr::Slice(s) => {
            expr(&s.expr)?;
            for part in [&s.start, &s.stop, &s.step].into_iter().flatten() {
                expr(part)?;
            }
            Ok(())
        }
        Expr::UnaryOp(u) => expr(&u.expr),
        Expr::BinOp(b) => {
            let op = match b.op {
                BinOpKind::Concat => Some("the `~` operator"),
                BinOpKind::Add => Some("the `+` operator"),
                BinOpKind::Mul => Some("the `*` operator"),
                BinOpKind::Pow => Some("the `**` operator"),
                _ => None,
            };
            if let Some(op) = op {
                return refuse(op, b.span().start_line);
            }
            expr(&b.left)?;
            expr(&b.right)
        }
        Expr::Compare(c) => {
            expr(&c.expr)?;
            c.ops.iter().try_for_each(|op| expr(&op.expr))
        }
        Expr::IfExpr(i) => {
            expr(&i.test_expr)?;
            expr(&i.true_expr)?;
            i.false_expr.as_ref().map_or(Ok(()), expr)
        }
        Expr::Filter(f) => {
            if !FILTERS.contains(&f.name) {
                return refuse(&format!("the filter `{}`", f.name), f.span().start_line);
            }
            if let Some(input) = &f.expr {
                expr(input)?;
            }
            args(&f.args)
        }
        Expr::Test(t) => {
            expr(&t.expr)?;
            args(&t.args)
        }
        Expr::GetAttr(g) => expr(&g.expr),
        Expr::GetItem(g) => {
            expr(&g.expr)?;
            expr(&g.subscript_expr)
        }
        Expr::Call(c) => {
            let allowed = match &c.expr {
                Expr::Var(v) => v.id == "range",
                Expr::GetAttr(g) => {
                    matches!(&g.expr, Expr::Var(v) if v.id == "loop")
                        && matches!(g.name, "cycle" | "changed")
                }
                _ => false,
            };
            if !allowed {
                return refuse(
                    "a call other than `range(…)`, `loop.cycle(…)` or `loop.changed(…)`",
                    c.span().start_line,
                );
            }
            args(&c.args)
        }
        Expr::List(l) => l.items.iter().try_for_each(expr),
        Expr::Map(m) => {
            m.keys.iter().try_for_each(expr)?;
            m.values.iter().try_for_each(expr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_email_templates_use_passes() {
        for ok in [
            "Hello {{ name }}",
            "{% if name %}Hi {{ name|title }}{% else %}Hi{% endif %}",
            "{% for c in name if c != ' ' %}{{ loop.index }}{{ c|upper }}{% endfor %}",
            "{% for i in range(3) %}<tr class=\"{{ loop.cycle('odd', 'even') }}\">{% endfor %}",
            "{{ name|default('friend')|e }} {{ name[:10] }} {{ name is defined }}",
            "{{ 'a' if name == 'b' else 'c' }} {{ [1, 2][0] }} {{ {'k': name}.k }}",
            "{% autoescape false %}{{ name|safe }}{% endautoescape %}",
            "{{ - 3 // 2 - 1 % 2 }} {{ name in 'abc' and not name }}",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn what_builds_large_values_is_refused_with_its_line() {
        for (bad, named) in [
            ("{% set x = name %}", "`{% set %}`"),
            ("{% set x %}a{% endset %}", "`{% set %}…{% endset %}`"),
            ("{% with x = name %}{% endwith %}", "`{% with %}`"),
            ("{% filter upper %}x{% endfilter %}", "`{% filter %}`"),
            ("{% macro f(n) %}{{ f(n) }}{% endmacro %}", "a macro"),
            ("{% include 'x' %}", "`{% include %}`"),
            ("{% extends 'x' %}", "`{% extends %}`"),
            ("{% import 'x' as y %}", "`{% import %}`"),
            ("{% block b %}{% endblock %}", "`{% block %}`"),
            ("{{ name ~ name }}", "the `~` operator"),
            ("{{ 'x' * 100000000 }}", "the `*` operator"),
            ("{{ name + name }}", "the `+` operator"),
            ("{{ 2 ** 8 }}", "the `**` operator"),
            ("{{ [name, name]|join }}", "the filter `join`"),
            ("{{ name|replace('a', 'aaaa') }}", "the filter `replace`"),
            ("{{ namespace(x=1) }}", "a call other than"),
            ("{{ debug() }}", "a call other than"),
            (
                "{% for x in [1] recursive %}{{ loop([]) }}{% endfor %}",
                "a recursive `for` loop",
            ),
        ] {
            let err = check(&format!("ok\n{bad}")).expect_err(bad);
            assert!(err.contains(named), "{bad}: {err}");
            assert!(err.contains("(line 2)"), "{bad}: {err}");
        }
        // Nested where it hides: inside a loop, an if, a filter's argument.
        for bad in [
            "{% for a in range(2) %}{% if a %}{{ a|default(a ~ a) }}{% endif %}{% endfor %}",
            "{{ name|default([name]|join) }}",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(
            check("{{ oops")
                .unwrap_err()
                .starts_with("is not a valid template")
        );
    }
}
