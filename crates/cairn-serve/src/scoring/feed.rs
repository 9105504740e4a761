//! A parsed request checked against the model — its inputs' names, element types and
//! shapes, and its MLflow signature when it has one — and turned into typed tensors.
//!
//! The rules are MLflow's: a column signature selects and orders the request's columns
//! (extra ones dropped, missing required ones refused) and converts each to its type;
//! a table goes to a model with one input as a matrix of its columns, to a model with
//! several inputs column by column by name; a tensor signature takes a table by
//! position. Where MLflow would pass a value onnxruntime then rejects (an integer for
//! a float input), Cairn converts it; where a value cannot be what the model needs,
//! the answer is a 400 naming the column or input, the row and the value.

use serde_json::{Map, Value};

use super::ScoringError;
use super::request::{Payload, kind_of};
use crate::model::{Elem, InputSpec, OnnxModel, TensorData};
use crate::signature::{ColumnType, Signature};

/// How the answer is shaped: MLflow answers a table with records (one object per
/// row), tensors with an object of output tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Records { rows: usize },
    Tensors,
}

pub struct Prepared {
    pub feeds: Vec<(String, Vec<i64>, TensorData)>,
    pub style: Style,
}

pub fn prepare(
    payload: Payload,
    model: &OnnxModel,
    signature: Option<&Signature>,
) -> Result<Prepared, ScoringError> {
    let inputs = model.inputs();
    match (payload, signature) {
        (Payload::Table { columns, rows }, Some(Signature::Columns(specs))) => {
            let (columns, rows) = enforce_columns(columns, rows, specs)?;
            let rows_n = rows.len();
            Ok(Prepared {
                feeds: table_feeds(inputs, &columns, &rows)?,
                style: Style::Records { rows: rows_n },
            })
        }
        (Payload::Table { columns, rows }, Some(Signature::Tensors(specs))) => {
            // A tensor signature takes a table by position, names ignored.
            if let Some(width) = specs
                .first()
                .and_then(|s| s.shape.get(1))
                .filter(|w| **w >= 0)
                && columns.len() as i64 != *width
            {
                return Err(ScoringError::Schema(format!(
                    "the model's signature takes {width} columns per row; the request has {} ({})",
                    columns.len(),
                    columns.join(", ")
                )));
            }
            let input = single_input(inputs)?;
            Ok(Prepared {
                feeds: vec![matrix_feed(input, &columns, &rows, None)?],
                style: Style::Tensors,
            })
        }
        (Payload::Table { columns, rows }, None) => {
            let rows_n = rows.len();
            Ok(Prepared {
                feeds: table_feeds(inputs, &columns, &rows)?,
                style: Style::Records { rows: rows_n },
            })
        }
        (Payload::Tensor(_) | Payload::Named(_), Some(Signature::Columns(specs))) => {
            let names: Vec<&str> = specs.iter().filter_map(|s| s.name.as_deref()).collect();
            Err(ScoringError::Schema(format!(
                "the model's signature names its columns ({}): send dataframe_split, dataframe_records, CSV, or inputs as an object of columns",
                names.join(", ")
            )))
        }
        (Payload::Tensor(value), _) => {
            let input = single_input(inputs)?;
            Ok(Prepared {
                feeds: vec![tensor_feed(input, value)?],
                style: Style::Tensors,
            })
        }
        (Payload::Named(map), _) => Ok(Prepared {
            feeds: named_feeds(inputs, map)?,
            style: Style::Tensors,
        }),
    }
}

fn single_input(inputs: &[InputSpec]) -> Result<&InputSpec, ScoringError> {
    match inputs {
        [one] => Ok(one),
        many => Err(ScoringError::BadRequest(format!(
            "the model has {} inputs ({}): send inputs as an object naming each, or a table with a column per input",
            many.len(),
            many.iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// The signature's columns, in its order, each converted to its type: extra columns
/// are dropped, a missing required one refused, a missing optional one all null.
fn enforce_columns(
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    specs: &[crate::signature::ColumnSpec],
) -> Result<(Vec<String>, Vec<Vec<Value>>), ScoringError> {
    let position = |name: &str| columns.iter().position(|c| c == name);
    let missing: Vec<&str> = specs
        .iter()
        .filter(|s| s.required)
        .filter_map(|s| s.name.as_deref())
        .filter(|n| position(n).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(ScoringError::Schema(format!(
            "the model's signature requires column(s) {} missing from the request (it has: {})",
            missing.join(", "),
            if columns.is_empty() {
                "none".to_owned()
            } else {
                columns.join(", ")
            }
        )));
    }
    let picked: Vec<(String, Option<usize>, ColumnType)> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let name = s.name.clone().unwrap_or_else(|| i.to_string());
            let at = position(&name);
            (name, at, s.ty)
        })
        .collect();
    let mut out_rows = Vec::with_capacity(rows.len());
    for (r, row) in rows.into_iter().enumerate() {
        let mut out = Vec::with_capacity(picked.len());
        for (name, at, ty) in &picked {
            let cell = at.and_then(|i| row.get(i)).cloned().unwrap_or(Value::Null);
            out.push(convert_cell(cell, *ty).map_err(|problem| {
                ScoringError::Schema(format!("column {name:?}, row {r}: {problem}"))
            })?);
        }
        out_rows.push(out);
    }
    Ok((picked.into_iter().map(|(n, ..)| n).collect(), out_rows))
}

/// A cell converted to a signature column type, as pandas' `astype` would.
fn convert_cell(cell: Value, ty: ColumnType) -> Result<Value, String> {
    match (ty, cell) {
        (_, Value::Null) => Ok(Value::Null),
        (ColumnType::Float | ColumnType::Double, Value::Bool(b)) => Ok(Value::from(u8::from(b))),
        (ColumnType::Float | ColumnType::Double, Value::String(s)) => match s.trim().parse::<f64>()
        {
            Ok(f) if f.is_finite() => Ok(Value::from(f)),
            _ => Err(format!("{s:?} is not a {}", ty.name())),
        },
        (ColumnType::String, Value::String(s)) => Ok(Value::String(s)),
        (ColumnType::String, v @ (Value::Number(_) | Value::Bool(_))) => {
            Ok(Value::String(v.to_string()))
        }
        (_, v @ (Value::Array(_) | Value::Object(_))) if ty != ColumnType::Other => {
            Err(format!("{} is not a {}", kind_of(&v), ty.name()))
        }
        (_, v) => Ok(v),
    }
}

/// A table fed to the model: one input takes the whole table as a matrix; several
/// inputs take a column each, by name.
fn table_feeds(
    inputs: &[InputSpec],
    columns: &[String],
    rows: &[Vec<Value>],
) -> Result<Vec<(String, Vec<i64>, TensorData)>, ScoringError> {
    if let [input] = inputs {
        return Ok(vec![matrix_feed(input, columns, rows, None)?]);
    }
    inputs
        .iter()
        .map(|input| {
            let at = columns
                .iter()
                .position(|c| *c == input.name)
                .ok_or_else(|| {
                    ScoringError::Schema(format!(
                        "the model's input {:?} has no column in the request (it has: {})",
                        input.name,
                        columns.join(", ")
                    ))
                })?;
            matrix_feed(input, columns, rows, Some(at))
        })
        .collect()
}

/// Rows (all columns, or only `only`) as a tensor of `input`'s type: `[rows, columns]`,
/// or `[rows]` when the input has rank 1.
fn matrix_feed(
    input: &InputSpec,
    columns: &[String],
    rows: &[Vec<Value>],
    only: Option<usize>,
) -> Result<(String, Vec<i64>, TensorData), ScoringError> {
    let width = if only.is_some() { 1 } else { columns.len() };
    let shape = match input.shape.len() {
        1 if width == 1 => vec![rows.len() as i64],
        _ => vec![rows.len() as i64, width as i64],
    };
    check_shape(input, &shape)?;
    let mut data = Buffer::new(input.elem, rows.len() * width);
    for (r, row) in rows.iter().enumerate() {
        let cells: Box<dyn Iterator<Item = (usize, &Value)>> = match only {
            Some(c) => Box::new(std::iter::once((c, &row[c]))),
            None => Box::new(row.iter().enumerate()),
        };
        for (c, cell) in cells {
            data.push(cell).map_err(|problem| {
                ScoringError::Schema(format!("column {:?}, row {r}: {problem}", columns[c]))
            })?;
        }
    }
    Ok((input.name.clone(), shape, data.finish()))
}

/// Named tensors: each of the model's inputs must be named, and nothing else.
fn named_feeds(
    inputs: &[InputSpec],
    mut map: Map<String, Value>,
) -> Result<Vec<(String, Vec<i64>, TensorData)>, ScoringError> {
    if let Some(unknown) = map.keys().find(|k| !inputs.iter().any(|i| i.name == **k)) {
        return Err(ScoringError::Schema(format!(
            "the model has no input {unknown:?} (its inputs: {})",
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    inputs
        .iter()
        .map(|input| {
            let value = map.remove(&input.name).ok_or_else(|| {
                ScoringError::Schema(format!("the model's input {:?} is missing", input.name))
            })?;
            tensor_feed(input, value)
        })
        .collect()
}

/// Nested arrays as a tensor of `input`'s type; ragged arrays are refused.
fn tensor_feed(
    input: &InputSpec,
    value: Value,
) -> Result<(String, Vec<i64>, TensorData), ScoringError> {
    // The shape is read off the first element at each depth; every other element must
    // have it too.
    let mut nested = Vec::new();
    let mut probe = &value;
    while let Value::Array(items) = probe {
        nested.push(items.len() as i64);
        match items.first() {
            Some(first) => probe = first,
            None => break,
        }
    }
    let mut shape = nested.clone();
    // A flat list for an input of one value per row ([N, 1]) is one row per value.
    if shape.len() + 1 == input.shape.len() && input.shape.last() == Some(&1) {
        shape.push(1);
    }
    check_shape(input, &shape)?;
    let count: i64 = shape.iter().product();
    let mut data = Buffer::new(input.elem, count.max(0) as usize);
    flatten(&value, &nested, &mut data, &input.name, &mut Vec::new())?;
    Ok((input.name.clone(), shape, data.finish()))
}

fn flatten(
    value: &Value,
    shape: &[i64],
    data: &mut Buffer,
    name: &str,
    at: &mut Vec<usize>,
) -> Result<(), ScoringError> {
    let ragged = |at: &[usize]| {
        ScoringError::BadRequest(format!(
            "input {name:?} is ragged: the list at {at:?} does not have the shape of the first ({shape:?})"
        ))
    };
    match (value, shape.split_first()) {
        (Value::Array(items), Some((&len, rest))) => {
            if items.len() as i64 != len {
                return Err(ragged(at));
            }
            for (i, item) in items.iter().enumerate() {
                at.push(i);
                flatten(item, rest, data, name, at)?;
                at.pop();
            }
            Ok(())
        }
        (Value::Array(_), None) => Err(ragged(at)),
        (scalar, None) => data.push(scalar).map_err(|problem| {
            ScoringError::Schema(format!("input {name:?} at {at:?}: {problem}"))
        }),
        (_, Some(_)) => Err(ragged(at)),
    }
}

/// The request's shape against the input's: same rank, and every fixed dimension.
fn check_shape(input: &InputSpec, shape: &[i64]) -> Result<(), ScoringError> {
    let fits = input.shape.len() == shape.len()
        && input
            .shape
            .iter()
            .zip(shape)
            .all(|(want, got)| *want < 0 || want == got);
    if fits {
        return Ok(());
    }
    let show = |s: &[i64]| {
        let dims: Vec<String> = s
            .iter()
            .map(|d| {
                if *d < 0 {
                    "N".to_owned()
                } else {
                    d.to_string()
                }
            })
            .collect();
        format!("[{}]", dims.join(", "))
    };
    Err(ScoringError::Schema(format!(
        "input {:?} takes a tensor of shape {} ({}), the request gives {}",
        input.name,
        show(&input.shape),
        input.elem.name(),
        show(shape)
    )))
}

/// Elements of one element type, converted from JSON values one by one.
struct Buffer(TensorData);

impl Buffer {
    fn new(elem: Elem, capacity: usize) -> Self {
        Self(match elem {
            Elem::F32 => TensorData::F32(Vec::with_capacity(capacity)),
            Elem::F64 => TensorData::F64(Vec::with_capacity(capacity)),
            Elem::I64 => TensorData::I64(Vec::with_capacity(capacity)),
            Elem::I32 => TensorData::I32(Vec::with_capacity(capacity)),
            Elem::Bool => TensorData::Bool(Vec::with_capacity(capacity)),
            Elem::Str => TensorData::Str(Vec::with_capacity(capacity)),
        })
    }

    /// Appends `value`; the error says why it cannot be this type.
    fn push(&mut self, value: &Value) -> Result<(), String> {
        match &mut self.0 {
            TensorData::F32(v) => v.push(float(value, "float")? as f32),
            TensorData::F64(v) => v.push(float(value, "double")?),
            TensorData::I64(v) => v.push(integer(value, "int64")?),
            TensorData::I32(v) => v.push(
                i32::try_from(integer(value, "int32")?)
                    .map_err(|_| format!("{value} is out of range for int32"))?,
            ),
            TensorData::Bool(v) => v.push(match value {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_f64() == Some(0.0) => false,
                Value::Number(n) if n.as_f64() == Some(1.0) => true,
                other => return Err(format!("{} is not a bool", describe(other))),
            }),
            TensorData::Str(v) => v.push(match value {
                Value::String(s) => s.clone(),
                Value::Number(_) | Value::Bool(_) => value.to_string(),
                other => return Err(format!("{} is not a string", describe(other))),
            }),
        }
        Ok(())
    }

    fn finish(self) -> TensorData {
        self.0
    }
}

/// A number for a float input: a missing value (null) is NaN, as pandas reads it.
fn float(value: &Value, ty: &str) -> Result<f64, String> {
    match value {
        Value::Number(n) => n.as_f64().ok_or_else(|| format!("{n} is not a {ty}")),
        Value::Null => Ok(f64::NAN),
        Value::Bool(b) => Ok(f64::from(u8::from(*b))),
        other => Err(format!("{} is not a {ty}", describe(other))),
    }
}

/// A whole number for an integer input: no fractions, no missing values.
fn integer(value: &Value, ty: &str) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("{n} is not an {ty}")),
        Value::Null => Err(format!("a missing value (null) cannot be an {ty}")),
        Value::Bool(b) => Ok(i64::from(*b)),
        other => Err(format!("{} is not an {ty}", describe(other))),
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) if s.chars().count() <= 40 => format!("{s:?}"),
        other => kind_of(other).to_owned(),
    }
}
