//! MLflow model signatures (the `signature.inputs` of an `MLmodel`): named columns of
//! scalar types, or tensors with a dtype and a shape.

use serde::Deserialize;

#[derive(Debug, Clone, PartialEq)]
pub enum Signature {
    Columns(Vec<ColumnSpec>),
    Tensors(Vec<TensorSpec>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnSpec {
    pub name: Option<String>,
    pub ty: ColumnType,
    pub required: bool,
}

/// MLflow's column types (`mlflow.types.DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Boolean,
    Integer,
    Long,
    Float,
    Double,
    String,
    /// Types Cairn does not check (binary, datetime, arrays, objects): passed through.
    Other,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            Self::Boolean => "boolean",
            Self::Integer => "integer",
            Self::Long => "long",
            Self::Float => "float",
            Self::Double => "double",
            Self::String => "string",
            Self::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: Option<String>,
    pub dtype: String,
    pub shape: Vec<i64>,
}

#[derive(Deserialize)]
struct RawSpec {
    #[serde(rename = "type")]
    ty: serde_json::Value,
    name: Option<String>,
    #[serde(default = "yes")]
    required: bool,
    #[serde(rename = "tensor-spec")]
    tensor_spec: Option<RawTensor>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    #[serde(default)]
    shape: Vec<i64>,
}

impl Signature {
    /// Parses the JSON text MLflow writes for a schema.
    pub fn parse(text: &str) -> Result<Self, String> {
        let specs: Vec<RawSpec> = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if specs.iter().any(|s| s.ty == "tensor") {
            let tensors = specs
                .into_iter()
                .map(|s| {
                    let t = s
                        .tensor_spec
                        .ok_or("a tensor spec without its tensor-spec")?;
                    Ok(TensorSpec {
                        name: s.name,
                        dtype: t.dtype,
                        shape: t.shape,
                    })
                })
                .collect::<Result<_, String>>()?;
            return Ok(Self::Tensors(tensors));
        }
        let columns = specs
            .into_iter()
            .map(|s| ColumnSpec {
                name: s.name,
                ty: match s.ty.as_str() {
                    Some("boolean") => ColumnType::Boolean,
                    Some("integer") => ColumnType::Integer,
                    Some("long") => ColumnType::Long,
                    Some("float") => ColumnType::Float,
                    Some("double") => ColumnType::Double,
                    Some("string") => ColumnType::String,
                    _ => ColumnType::Other,
                },
                required: s.required,
            })
            .collect();
        Ok(Self::Columns(columns))
    }

    /// The named columns, when the signature is column-based and every column is named.
    pub fn column_names(&self) -> Option<Vec<&str>> {
        match self {
            Self::Columns(cols) => cols.iter().map(|c| c.name.as_deref()).collect(),
            Self::Tensors(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_columns_and_tensors() {
        let cols = Signature::parse(r#"[{"type": "double", "name": "a", "required": true}, {"type": "long", "name": "b", "required": false}]"#).unwrap();
        assert_eq!(cols.column_names(), Some(vec!["a", "b"]));
        let Signature::Columns(c) = cols else {
            panic!()
        };
        assert_eq!((c[1].ty, c[1].required), (ColumnType::Long, false));
        let t = Signature::parse(
            r#"[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]"#,
        )
        .unwrap();
        assert_eq!(
            t,
            Signature::Tensors(vec![TensorSpec {
                name: None,
                dtype: "float32".into(),
                shape: vec![-1, 4]
            }])
        );
    }
}
