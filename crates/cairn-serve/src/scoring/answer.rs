//! A run's outputs in the shape `mlflow models serve` answers.
//!
//! A table in gives records out — `{"predictions": [{output: value, …}, …]}`, one per
//! row — the shape MLflow gives when each output holds one value per row (a label, a
//! regression value, a ZipMap's class probabilities). Where an output holds several
//! values per row (probabilities as a matrix), MLflow fails to build its DataFrame (or,
//! for a single output, flattens the rows into one long column); Cairn keeps each row's
//! values together in its record instead. Tensors in give tensors out:
//! `{"predictions": {output: nested lists, …}}`.

use serde_json::{Map, Value};

use super::feed::Style;
use crate::model::{Output, OutputValue};

pub fn answer(outputs: Vec<Output>, style: Style) -> Value {
    let Style::Records { rows } = style else {
        return tensors(outputs);
    };
    // Records only when every output splits into one part per row.
    if !outputs.iter().all(|o| splits_into(&o.value, rows)) {
        return tensors(outputs);
    }
    let mut records: Vec<Map<String, Value>> = (0..rows).map(|_| Map::new()).collect();
    for output in outputs {
        for (record, value) in records.iter_mut().zip(per_row(output.value, rows)) {
            record.insert(output.name.clone(), value);
        }
    }
    serde_json::json!({ "predictions": records })
}

fn tensors(outputs: Vec<Output>) -> Value {
    let tensors: Map<String, Value> = outputs
        .into_iter()
        .map(|o| (o.name, whole(o.value)))
        .collect();
    serde_json::json!({ "predictions": tensors })
}

/// Whether an output holds one part per row: one value, one map, or one sub-tensor.
fn splits_into(value: &OutputValue, rows: usize) -> bool {
    match value {
        OutputValue::Maps(maps) => maps.len() == rows,
        OutputValue::Tensor { shape, elements } => {
            elements.len() == rows || (rows > 0 && shape.first() == Some(&rows))
        }
    }
}

/// An output's value for each row (`splits_into` holds): a scalar when it holds one
/// value per row, the row's nested lists when it holds more.
fn per_row(value: OutputValue, rows: usize) -> Vec<Value> {
    match value {
        OutputValue::Maps(maps) => maps.into_iter().map(Value::Object).collect(),
        OutputValue::Tensor { elements, .. } if elements.len() == rows => elements,
        OutputValue::Tensor { shape, elements } => {
            let inner = &shape[1..];
            let per = (elements.len() / rows).max(1);
            elements
                .chunks(per)
                .map(|chunk| nest(chunk, inner))
                .collect()
        }
    }
}

fn whole(value: OutputValue) -> Value {
    match value {
        OutputValue::Maps(maps) => Value::Array(maps.into_iter().map(Value::Object).collect()),
        OutputValue::Tensor { shape, elements } => nest(&elements, &shape),
    }
}

/// Row-major elements as nested lists of `shape`.
fn nest(elements: &[Value], shape: &[usize]) -> Value {
    match shape.split_first() {
        None => elements.first().cloned().unwrap_or(Value::Null),
        Some((&n, rest)) => {
            let per = rest.iter().product::<usize>();
            Value::Array(
                (0..n)
                    .map(|i| nest(&elements[i * per..(i + 1) * per], rest))
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tensor(shape: &[usize], values: &[f64]) -> OutputValue {
        OutputValue::Tensor {
            shape: shape.to_vec(),
            elements: values.iter().map(|v| json!(v)).collect(),
        }
    }

    #[test]
    fn a_table_gets_records_with_each_rows_values() {
        let outputs = vec![
            Output {
                name: "label".into(),
                value: tensor(&[2], &[1.0, 0.0]),
            },
            Output {
                name: "probabilities".into(),
                value: tensor(&[2, 2], &[0.2, 0.8, 0.7, 0.3]),
            },
        ];
        assert_eq!(
            answer(outputs, Style::Records { rows: 2 }),
            json!({"predictions": [
                {"label": 1.0, "probabilities": [0.2, 0.8]},
                {"label": 0.0, "probabilities": [0.7, 0.3]},
            ]})
        );
    }

    #[test]
    fn tensors_get_tensors_and_a_column_per_row_becomes_scalars() {
        let outputs = vec![Output {
            name: "variable".into(),
            value: tensor(&[2, 1], &[3.5, 4.5]),
        }];
        assert_eq!(
            answer(outputs.clone(), Style::Records { rows: 2 }),
            json!({"predictions": [{"variable": 3.5}, {"variable": 4.5}]})
        );
        assert_eq!(
            answer(outputs, Style::Tensors),
            json!({"predictions": {"variable": [[3.5], [4.5]]}})
        );
    }
}
