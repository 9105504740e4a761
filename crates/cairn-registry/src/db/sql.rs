//! SQL built at run time (searches, multi-row inserts), with each engine's placeholders.
//!
//! PostgreSQL wants numbered `$n` placeholders (sqlx's own `QueryBuilder<Any>` writes
//! `?`, which it rejects). SQLite gets anonymous `?`: it understands `$n` too, but
//! resolves a named parameter by scanning the statement's list of names, so a statement
//! with n bound values costs O(n²) to prepare and to bind (a 100-metric batch binds 600).
//! Values are always bound, never spliced into the text: on SQLite kept as rusqlite
//! values, on PostgreSQL as sqlx's arguments. Rows come back through [`Row`]: tuples
//! as the libraries decode them, row types through one [`Decode`] each.

use std::fmt::Write as _;

use rusqlite::ToSql;
use rusqlite::types::{ToSqlOutput, Value};
use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryAs};
use sqlx::{Any, Arguments, AssertSqlSafe, Encode, FromRow, Type};

use crate::db::Backend;

/// A row read from either engine: decodable by sqlx and by rusqlite. Tuples of column
/// types are (positionally, by both libraries); a row type is through [`Decode`] and
/// [`decoded_row!`], one piece of code for both drivers.
pub(crate) trait Row:
    for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>
    + for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>
    + Send
    + Unpin
    + 'static
{
}

impl<T> Row for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>
        + for<'r> TryFrom<&'r rusqlite::Row<'r>, Error = rusqlite::Error>
        + Send
        + Unpin
        + 'static
{
}

/// A row of either driver, read column after column.
pub(crate) struct Columns<'r> {
    row: RowOf<'r>,
    next: usize,
}

enum RowOf<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Any(&'r sqlx::any::AnyRow),
}

/// A column's value failed to decode, in the words of the driver that read it.
pub(crate) enum DecodeError {
    Sqlite(rusqlite::Error),
    Any(sqlx::Error),
}

impl Columns<'_> {
    /// The next column's value.
    pub fn next<T>(&mut self) -> Result<T, DecodeError>
    where
        T: rusqlite::types::FromSql + for<'a> sqlx::Decode<'a, Any> + Type<Any>,
    {
        let index = self.next;
        self.next += 1;
        match self.row {
            RowOf::Sqlite(row) => row.get(index).map_err(DecodeError::Sqlite),
            RowOf::Any(row) => sqlx::Row::try_get(row, index).map_err(DecodeError::Any),
        }
    }
}

/// One column value of whatever type (a generic row, as `copy` reads them), typed so
/// that a NULL binds with its column's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
}

impl Columns<'_> {
    /// How many columns the row has.
    pub fn count(&self) -> usize {
        match self.row {
            RowOf::Sqlite(row) => row.as_ref().column_count(),
            RowOf::Any(row) => sqlx::Row::len(row),
        }
    }

    /// The name of column `index`.
    pub fn name(&self, index: usize) -> String {
        match self.row {
            RowOf::Sqlite(row) => row
                .as_ref()
                .column_name(index)
                .unwrap_or_default()
                .to_owned(),
            RowOf::Any(row) => sqlx::Column::name(&sqlx::Row::columns(row)[index]).to_owned(),
        }
    }

    /// The next column's value, typed as stored (SQLite types values, not columns).
    pub fn next_cell(&mut self) -> Result<Cell, DecodeError> {
        use rusqlite::types::ValueRef;
        use sqlx::any::AnyTypeInfoKind as Kind;
        use sqlx::{Row as _, ValueRef as _};
        let index = self.next;
        self.next += 1;
        match self.row {
            RowOf::Sqlite(row) => {
                let value = row.get_ref(index).map_err(DecodeError::Sqlite)?;
                Ok(match value {
                    ValueRef::Integer(n) => Cell::Int(Some(n)),
                    ValueRef::Real(x) => Cell::Real(Some(x)),
                    ValueRef::Text(_) => {
                        Cell::Text(Some(row.get(index).map_err(DecodeError::Sqlite)?))
                    }
                    // A NULL takes its column's declared type (SQLite's type affinity
                    // rules), so that it binds as that type elsewhere.
                    ValueRef::Null => {
                        let declared = row.as_ref().columns()[index]
                            .decl_type()
                            .unwrap_or_default()
                            .to_ascii_uppercase();
                        if declared.contains("INT") {
                            Cell::Int(None)
                        } else if ["REAL", "FLOA", "DOUB"]
                            .iter()
                            .any(|t| declared.contains(t))
                        {
                            Cell::Real(None)
                        } else {
                            Cell::Text(None)
                        }
                    }
                    ValueRef::Blob(_) => {
                        return Err(DecodeError::Sqlite(rusqlite::Error::InvalidColumnType(
                            index,
                            self.name(index),
                            rusqlite::types::Type::Blob,
                        )));
                    }
                })
            }
            RowOf::Any(row) => {
                let any = |e| DecodeError::Any(e);
                let declared = sqlx::Column::type_info(&row.columns()[index]).kind();
                let kind = match declared {
                    Kind::Null => row.try_get_raw(index).map_err(any)?.type_info().kind(),
                    k => k,
                };
                Ok(match kind {
                    k if k.is_integer() || k == Kind::Bool => {
                        Cell::Int(row.try_get(index).map_err(any)?)
                    }
                    Kind::Real | Kind::Double => Cell::Real(row.try_get(index).map_err(any)?),
                    Kind::Text => Cell::Text(row.try_get(index).map_err(any)?),
                    Kind::Null => Cell::Text(None),
                    other => {
                        return Err(DecodeError::Any(sqlx::Error::Decode(
                            format!(
                                "column {} has a type a generic row does not hold: {other:?}",
                                self.name(index)
                            )
                            .into(),
                        )));
                    }
                })
            }
        }
    }
}

/// A row type decoded from its columns in the order its `COLUMNS` (written beside the
/// decoder, and into every SELECT that reads it) lists them.
pub(crate) trait Decode: Sized {
    fn decode(columns: &mut Columns<'_>) -> Result<Self, DecodeError>;
}

/// Makes a [`Decode`] type readable by both drivers (a [`Row`]).
macro_rules! decoded_row {
    ($row:ty) => {
        impl<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> for $row {
            fn from_row(row: &'r sqlx::any::AnyRow) -> Result<Self, sqlx::Error> {
                $crate::db::sql::decode_any(row)
            }
        }
        impl<'r> TryFrom<&'r rusqlite::Row<'r>> for $row {
            type Error = rusqlite::Error;
            fn try_from(row: &'r rusqlite::Row<'r>) -> rusqlite::Result<Self> {
                $crate::db::sql::decode_sqlite(row)
            }
        }
    };
}
pub(crate) use decoded_row;

pub(crate) fn decode_any<T: Decode>(row: &sqlx::any::AnyRow) -> Result<T, sqlx::Error> {
    T::decode(&mut Columns {
        row: RowOf::Any(row),
        next: 0,
    })
    .map_err(|e| match e {
        DecodeError::Any(e) => e,
        DecodeError::Sqlite(e) => sqlx::Error::Decode(Box::new(e)),
    })
}

pub(crate) fn decode_sqlite<T: Decode>(row: &rusqlite::Row<'_>) -> rusqlite::Result<T> {
    // rusqlite's row borrows the statement for 'stmt; the columns only need it briefly.
    T::decode(&mut Columns {
        row: RowOf::Sqlite(row),
        next: 0,
    })
    .map_err(|e| match e {
        DecodeError::Sqlite(e) => e,
        DecodeError::Any(e) => rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
    })
}

/// Rows per multi-row INSERT: at 4 bound values a row, under SQLite's limit of 32,766
/// variables and PostgreSQL's 65,535 parameters a statement.
pub(crate) const INSERT_CHUNK: usize = 1000;

pub(crate) struct SqlBuilder {
    backend: Backend,
    sql: String,
    /// PostgreSQL: the bound values.
    args: AnyArguments,
    /// SQLite: the bound values, as rusqlite holds them.
    values: Vec<Value>,
    count: usize,
}

impl SqlBuilder {
    pub fn new(backend: Backend, sql: impl Into<String>) -> Self {
        Self {
            backend,
            sql: sql.into(),
            args: AnyArguments::default(),
            values: Vec::new(),
            count: 0,
        }
    }

    /// A statement whose text numbers its placeholders `$1`, `$2`… (PostgreSQL's
    /// form); the values follow with [`Self::bind`], in that order. SQLite gets the
    /// same numbers as `?1`, `?2`…, its form of numbered placeholders.
    pub fn numbered(backend: Backend, sql: &str) -> Self {
        let sql = match backend {
            Backend::Postgres => sql.to_owned(),
            Backend::Sqlite => {
                let mut text = String::with_capacity(sql.len());
                let mut rest = sql;
                while let Some(at) = rest.find('$') {
                    let numbered = rest[at + 1..].starts_with(|c: char| c.is_ascii_digit());
                    text.push_str(&rest[..at]);
                    text.push(if numbered { '?' } else { '$' });
                    rest = &rest[at + 1..];
                }
                text.push_str(rest);
                text
            }
        };
        Self::new(backend, sql)
    }

    /// Binds the value of the next numbered placeholder of a [`Self::numbered`]
    /// statement.
    pub fn bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + ToSql + 't,
    {
        self.count += 1;
        match self.backend {
            Backend::Sqlite => self.values.push(owned_value(&value)),
            Backend::Postgres => add_arg(&mut self.args, value),
        }
        self
    }

    /// Appends SQL text (never a value: values go through [`Self::push_bind`]).
    pub fn push(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        write!(self.sql, "{sql}").expect("writing to a String");
        self
    }

    /// Appends the next placeholder and binds `value` to it.
    pub fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + ToSql + 't,
    {
        self.count += 1;
        match self.backend {
            Backend::Sqlite => {
                self.sql.push('?');
                self.values.push(owned_value(&value));
            }
            Backend::Postgres => {
                write!(self.sql, "${}", self.count).expect("writing to a String");
                add_arg(&mut self.args, value);
            }
        }
        self
    }

    /// Appends ` LIMIT limit OFFSET offset`, as numbers in the text. SQLite plans a
    /// query with its LIMIT's value, so a bound LIMIT makes the prepared statement
    /// expire at every new binding: each execution would parse and plan it again (its
    /// `SQLITE_STMTSTATUS_REPREPARE` counts them). The numbers are the caller's own
    /// integers, never request text; both engines count in signed 64 bits, and no
    /// table holds more rows than that (a page token may carry any offset).
    pub fn push_limit(&mut self, limit: u64, offset: u64) -> &mut Self {
        let most = i64::MAX as u64;
        let (limit, offset) = (limit.min(most), offset.min(most));
        self.push(format_args!(" LIMIT {limit} OFFSET {offset}"))
    }

    /// Items pushed with `separator` between them.
    pub fn separated(&mut self, separator: &'static str) -> Separated<'_> {
        Separated {
            builder: self,
            separator,
            first: true,
        }
    }

    /// `VALUES (…), (…)`: one parenthesized row per item.
    pub fn push_values<I, F>(&mut self, items: I, mut row: F) -> &mut Self
    where
        I: IntoIterator,
        F: FnMut(Separated<'_>, I::Item),
    {
        self.push("VALUES ");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.push("(");
            row(self.separated(", "), item);
            self.push(")");
        }
        self
    }

    #[cfg(test)]
    pub fn sql(&self) -> &str {
        &self.sql
    }

    /// The SQL and its arguments, for sqlx (PostgreSQL builders only: SQLite runs on
    /// rusqlite, see [`Self::sqlite_statement`]).
    fn take(&mut self) -> (String, AnyArguments) {
        debug_assert_eq!(
            self.backend,
            Backend::Postgres,
            "SQLite SQL run through sqlx"
        );
        self.count = 0;
        (
            std::mem::take(&mut self.sql),
            std::mem::take(&mut self.args),
        )
    }

    /// The SQL and its values, for rusqlite (SQLite builders only).
    pub fn sqlite_statement(&self) -> (&str, &[Value]) {
        debug_assert_eq!(
            self.backend,
            Backend::Sqlite,
            "PostgreSQL SQL run on SQLite"
        );
        (&self.sql, &self.values)
    }

    pub fn build(&mut self) -> Query<'static, Any, AnyArguments> {
        let (sql, args) = self.take();
        sqlx::query_with(AssertSqlSafe(sql), args)
    }

    pub fn build_query_as<T>(&mut self) -> QueryAs<'static, Any, T, AnyArguments>
    where
        T: for<'r> FromRow<'r, sqlx::any::AnyRow>,
    {
        let (sql, args) = self.take();
        sqlx::query_as_with(AssertSqlSafe(sql), args)
    }
}

fn add_arg<'t, T: Encode<'t, Any> + Type<Any> + 't>(args: &mut AnyArguments, value: T) {
    // Encoding into Any's owned buffer cannot fail for the types the store binds.
    args.add(value).expect("encoding a bound value");
}

fn owned_value(value: &impl ToSql) -> Value {
    // The types the store binds (integers, floats, text, their options) convert
    // without fail.
    match value.to_sql().expect("converting a bound value") {
        ToSqlOutput::Borrowed(v) => v.try_into().expect("text bound as UTF-8"),
        ToSqlOutput::Owned(v) => v,
        other => unreachable!("the store binds no {other:?}"),
    }
}

/// Pushes with a separator between items (see [`SqlBuilder::separated`]).
pub(crate) struct Separated<'b> {
    builder: &'b mut SqlBuilder,
    separator: &'static str,
    first: bool,
}

impl Separated<'_> {
    fn separate(&mut self) {
        if !self.first {
            self.builder.push(self.separator);
        }
        self.first = false;
    }

    pub fn push_bind<'t, T>(&mut self, value: T) -> &mut Self
    where
        T: Encode<'t, Any> + Type<Any> + ToSql + 't,
    {
        self.separate();
        self.builder.push_bind(value);
        self
    }

    /// Appends text with no separator before it.
    pub fn push_unseparated(&mut self, sql: impl std::fmt::Display) -> &mut Self {
        self.builder.push(sql);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::SqlBuilder;
    use crate::db::Backend;

    fn sample(backend: Backend) -> String {
        let mut q = SqlBuilder::new(backend, "SELECT * FROM t WHERE a = ");
        q.push_bind(1_i64).push(" AND b IN (");
        q.separated(", ")
            .push_bind("x")
            .push_bind("y")
            .push_unseparated(")");
        q.push(" ");
        q.push_values([(1_i64, "p"), (2, "q")], |mut row, (n, s)| {
            row.push_bind(n).push_bind(s);
        });
        q.sql().to_owned()
    }

    #[test]
    fn postgres_placeholders_are_numbered_in_order() {
        assert_eq!(
            sample(Backend::Postgres),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) VALUES ($4, $5), ($6, $7)"
        );
    }

    #[test]
    fn numbered_placeholders_keep_their_numbers() {
        let sql = "UPDATE t SET a = $2, price = '$' WHERE id = $1 AND b = $12";
        assert_eq!(SqlBuilder::numbered(Backend::Postgres, sql).sql(), sql);
        assert_eq!(
            SqlBuilder::numbered(Backend::Sqlite, sql).sql(),
            "UPDATE t SET a = ?2, price = '$' WHERE id = ?1 AND b = ?12"
        );
    }

    #[test]
    fn sqlite_placeholders_are_anonymous() {
        assert_eq!(
            sample(Backend::Sqlite),
            "SELECT * FROM t WHERE a = ? AND b IN (?, ?) VALUES (?, ?), (?, ?)"
        );
    }
}
