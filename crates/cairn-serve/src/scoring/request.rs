//! A scoring request's body, parsed into what it carries: a table (MLflow's DataFrame
//! formats and CSV) or tensors (`instances`/`inputs`), as `mlflow models serve` reads
//! the same body.

use std::collections::BTreeMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::ScoringError;

/// The formats of a JSON body; exactly one must be present.
const FORMATS: [&str; 4] = [
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
];

/// What a request carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// Rows under column names: `dataframe_split`, `dataframe_records`, CSV, and
    /// `instances`/`inputs` given as records or as a dict of columns when the model has
    /// a column signature. Cells are JSON values (CSV cells parsed as numbers where
    /// they are numbers).
    Table {
        columns: Vec<String>,
        rows: Vec<Vec<Value>>,
    },
    /// One unnamed tensor (`instances`/`inputs` as a list), nested arrays.
    Tensor(Value),
    /// Named tensors (`inputs`/`instances` as a dict of arrays).
    Named(Map<String, Value>),
}

/// Parses a body of `content_type` (`application/json` or `text/csv`).
pub fn parse(
    content_type: Option<&str>,
    body: &[u8],
    table_dicts: bool,
) -> Result<Payload, ScoringError> {
    let kind = media_type(content_type)?;
    let text = std::str::from_utf8(body)
        .map_err(|e| ScoringError::BadRequest(format!("the body is not UTF-8 text: {e}")))?;
    match kind {
        Media::Csv => csv_table(text),
        Media::Json => json_payload(text, table_dicts),
    }
}

enum Media {
    Json,
    Csv,
}

/// The media type, as MLflow checks it: only a `charset` parameter, and only UTF-8.
fn media_type(content_type: Option<&str>) -> Result<Media, ScoringError> {
    let Some(content_type) = content_type else {
        return Err(ScoringError::UnsupportedMediaType(
            "a Content-Type header is required: application/json or text/csv".into(),
        ));
    };
    let mut parts = content_type.split(';').map(str::trim);
    let kind = parts.next().unwrap_or_default().to_ascii_lowercase();
    for parameter in parts.filter(|p| !p.is_empty()) {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if !name.trim().eq_ignore_ascii_case("charset") {
            return Err(ScoringError::UnsupportedMediaType(format!(
                "unrecognized content type parameter: {}",
                name.trim()
            )));
        }
        let value = value.trim().trim_matches('"');
        if !value.eq_ignore_ascii_case("utf-8") && !value.eq_ignore_ascii_case("utf8") {
            return Err(ScoringError::UnsupportedMediaType(
                "the scoring server only supports UTF-8".into(),
            ));
        }
    }
    match kind.as_str() {
        "application/json" => Ok(Media::Json),
        "text/csv" => Ok(Media::Csv),
        other => Err(ScoringError::UnsupportedMediaType(format!(
            "this server accepts application/json and text/csv, got {other:?}"
        ))),
    }
}

fn json_payload(text: &str, table_dicts: bool) -> Result<Payload, ScoringError> {
    // The fields are kept as raw text: records are read again in their columns' order,
    // which a JSON object (and `serde_json::Map`) does not keep.
    match serde_json::from_str::<BTreeMap<String, Box<RawValue>>>(text) {
        Ok(fields) => fields_payload(fields, table_dicts),
        // Not an object: say what it is instead, or why it is not JSON at all.
        Err(e) => Err(ScoringError::BadRequest(
            match serde_json::from_str::<Value>(text) {
                Ok(other) => format!(
                    "the body must be a JSON object with exactly one of the fields {}; got {}",
                    FORMATS.join(", "),
                    kind_of(&other)
                ),
                Err(_) => format!("the body is not valid JSON: {e}"),
            },
        )),
    }
}

fn fields_payload(
    mut fields: BTreeMap<String, Box<RawValue>>,
    table_dicts: bool,
) -> Result<Payload, ScoringError> {
    let present: Vec<&str> = FORMATS
        .iter()
        .copied()
        .filter(|f| fields.contains_key(*f))
        .collect();
    let [format] = present.as_slice() else {
        return Err(ScoringError::BadRequest(format!(
            "the body must hold exactly one of the fields {}; it holds {}",
            FORMATS.join(", "),
            if present.is_empty() {
                "none".to_owned()
            } else {
                present.join(", ")
            }
        )));
    };
    let raw = fields.remove(*format).expect("present");
    let data: Value = serde_json::from_str(raw.get())
        .map_err(|e| ScoringError::BadRequest(format!("{format} is not valid JSON: {e}")))?;
    let is_records = |v: &Value| matches!(v, Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object));
    match *format {
        "dataframe_split" => split_table(data),
        "dataframe_records" if is_records(&data) => records_table(raw.get()),
        "dataframe_records" => match data {
            Value::Array(items) if items.is_empty() => Ok(Payload::Table {
                columns: vec![],
                rows: vec![],
            }),
            other => Err(ScoringError::BadRequest(format!(
                "dataframe_records must be a list of records (objects of column values); got {}",
                kind_of(&other)
            ))),
        },
        _ if is_records(&data) => records_table(raw.get()),
        _ => tensors(format, data, table_dicts),
    }
}

/// One record, its columns in the order the request wrote them.
struct OrderedRecord(Vec<(String, Value)>);

impl<'de> serde::Deserialize<'de> for OrderedRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = OrderedRecord;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a record (an object of column values)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedRecord, A::Error> {
                let mut cells = Vec::new();
                while let Some(entry) = map.next_entry::<String, Value>()? {
                    cells.push(entry);
                }
                Ok(OrderedRecord(cells))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// `{"columns": [...], "data": [[...]], "index": [...]}`.
fn split_table(data: Value) -> Result<Payload, ScoringError> {
    let Value::Object(mut split) = data else {
        return Err(ScoringError::BadRequest(format!(
            "dataframe_split must be an object with data (and columns); got {}",
            kind_of(&data)
        )));
    };
    if let Some(extra) = split
        .keys()
        .find(|k| !["columns", "data", "index"].contains(&k.as_str()))
    {
        return Err(ScoringError::BadRequest(format!(
            "dataframe_split has an unknown field {extra:?} (allowed: columns, data, index)"
        )));
    }
    let Some(Value::Array(rows)) = split.remove("data") else {
        return Err(ScoringError::BadRequest(
            "dataframe_split needs data: a list of rows".into(),
        ));
    };
    let rows: Vec<Vec<Value>> = rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Array(cells) => Ok(cells),
            // A list of scalars is one column, as pandas reads it.
            scalar if !scalar.is_object() => Ok(vec![scalar]),
            other => Err(ScoringError::BadRequest(format!(
                "dataframe_split row {i} is {}, not a list of values",
                kind_of(&other)
            ))),
        })
        .collect::<Result<_, _>>()?;
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let columns = match split.remove("columns") {
        None | Some(Value::Null) => (0..width).map(|i| i.to_string()).collect(),
        Some(Value::Array(names)) => names.into_iter().map(column_name).collect(),
        Some(other) => {
            return Err(ScoringError::BadRequest(format!(
                "dataframe_split columns must be a list of names; got {}",
                kind_of(&other)
            )));
        }
    };
    let columns: Vec<String> = columns;
    for (i, row) in rows.iter().enumerate() {
        if row.len() != columns.len() {
            return Err(ScoringError::BadRequest(format!(
                "dataframe_split row {i} has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
    }
    Ok(Payload::Table { columns, rows })
}

/// `[{"a": 1, "b": 2}, …]`: columns in order of first appearance; a key a record lacks
/// is null there (missing), as pandas reads it.
fn records_table(raw: &str) -> Result<Payload, ScoringError> {
    let records: Vec<OrderedRecord> = serde_json::from_str(raw)
        .map_err(|e| ScoringError::BadRequest(format!("the records cannot be read: {e}")))?;
    let mut columns: Vec<String> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for record in &records {
        for (key, _) in &record.0 {
            if !index.contains_key(key) {
                index.insert(key.clone(), columns.len());
                columns.push(key.clone());
            }
        }
    }
    let rows = records
        .into_iter()
        .map(|record| {
            let mut row = vec![Value::Null; columns.len()];
            for (key, value) in record.0 {
                row[index[&key]] = value;
            }
            row
        })
        .collect();
    Ok(Payload::Table { columns, rows })
}

/// `instances`/`inputs`: a list of records is a table; a dict is named tensors (or,
/// for a model with a column signature, a dict of columns); a list is one tensor.
fn tensors(format: &str, data: Value, table_dicts: bool) -> Result<Payload, ScoringError> {
    match data {
        Value::Object(map) if table_dicts => columns_table(format, map),
        Value::Object(map) => Ok(Payload::Named(map)),
        Value::Array(_) => Ok(Payload::Tensor(data)),
        other => Err(ScoringError::BadRequest(format!(
            "{format} must be a list (of rows or records) or an object of named inputs; got {}",
            kind_of(&other)
        ))),
    }
}

/// A dict of equally long columns, for a model whose signature names columns.
fn columns_table(format: &str, map: Map<String, Value>) -> Result<Payload, ScoringError> {
    let mut columns = Vec::with_capacity(map.len());
    let mut cells: Vec<Vec<Value>> = Vec::with_capacity(map.len());
    for (name, column) in map {
        let values = match column {
            Value::Array(values) => values,
            scalar => vec![scalar],
        };
        columns.push(name);
        cells.push(values);
    }
    let length = cells.first().map_or(0, Vec::len);
    if let Some(at) = cells.iter().position(|c| c.len() != length) {
        return Err(ScoringError::BadRequest(format!(
            "{format}: column {:?} has {} values and column {:?} has {length}; columns must be equally long",
            columns[at],
            cells[at].len(),
            columns[0]
        )));
    }
    let mut rows: Vec<Vec<Value>> = (0..length)
        .map(|_| Vec::with_capacity(columns.len()))
        .collect();
    for column in cells {
        for (row, value) in rows.iter_mut().zip(column) {
            row.push(value);
        }
    }
    Ok(Payload::Table { columns, rows })
}

fn column_name(name: Value) -> String {
    match name {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// CSV with a header line, as `pandas.read_csv` reads it: numbers where cells are
/// numbers, an empty cell missing (null).
fn csv_table(text: &str) -> Result<Payload, ScoringError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(text.as_bytes());
    let columns: Vec<String> = reader
        .headers()
        .map_err(|e| ScoringError::BadRequest(format!("the CSV body cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if columns.is_empty() || columns.iter().all(String::is_empty) {
        return Err(ScoringError::BadRequest(
            "the CSV body has no header line naming its columns".into(),
        ));
    }
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.map_err(|e| {
            ScoringError::BadRequest(format!("the CSV body's row {} cannot be read: {e}", i + 1))
        })?;
        rows.push(record.iter().map(csv_cell).collect());
    }
    Ok(Payload::Table { columns, rows })
}

fn csv_cell(cell: &str) -> Value {
    let cell = cell.trim();
    if cell.is_empty() {
        return Value::Null;
    }
    if let Ok(i) = cell.parse::<i64>() {
        return Value::from(i);
    }
    match cell.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        _ => Value::String(cell.to_owned()),
    }
}

/// A short description of a JSON value's kind, for messages.
pub(super) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
