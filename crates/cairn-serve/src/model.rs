//! One ONNX model loaded in onnxruntime: its inputs and outputs described, and `run`
//! turning typed input tensors into output values Cairn can answer with.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};
use serde_json::{Map, Value};

use crate::runtime::Runtime;

/// The element types Cairn feeds and reads. Every input of a servable model is a tensor
/// of one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Elem {
    F32,
    F64,
    I64,
    I32,
    Bool,
    Str,
}

impl Elem {
    fn of(ty: TensorElementType) -> Option<Self> {
        Some(match ty {
            TensorElementType::Float32 => Self::F32,
            TensorElementType::Float64 => Self::F64,
            TensorElementType::Int64 => Self::I64,
            TensorElementType::Int32 => Self::I32,
            TensorElementType::Bool => Self::Bool,
            TensorElementType::String => Self::Str,
            _ => return None,
        })
    }

    /// ONNX's name of the type, as error messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float",
            Self::F64 => "double",
            Self::I64 => "int64",
            Self::I32 => "int32",
            Self::Bool => "bool",
            Self::Str => "string",
        }
    }
}

/// A model input: its name, element type and shape (`-1` where any size goes).
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    pub name: String,
    pub elem: Elem,
    pub shape: Vec<i64>,
}

/// A typed tensor to feed: its shape and its elements, row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0} is not an ONNX model onnxruntime can load: {1}")]
    Load(String, String),
    #[error("{0}")]
    Unsupported(String),
    #[error("the model failed on this input: {0}")]
    Run(String),
}

/// A loaded model: a few sessions of the same graph, each running one request at a
/// time on one thread. Concurrent requests run side by side on separate sessions, which
/// measured better than one session parallelizing inside each run (whose spinning
/// threads fight the request threads for the cores; see docs/BENCHMARKS.md). Each
/// session holds its own copy of the weights: `--sessions` trades memory for
/// concurrency.
pub struct OnnxModel {
    sessions: Vec<Mutex<Session>>,
    /// Where the next run starts looking for an idle session.
    next: AtomicUsize,
    inputs: Vec<InputSpec>,
    outputs: Vec<String>,
}

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("inputs", &self.inputs)
            .field("outputs", &self.outputs)
            .finish()
    }
}

impl OnnxModel {
    /// Loads `file` (a path inside the version's directory, so that external weights
    /// beside it are found) into `sessions` sessions, and checks that every input is a
    /// tensor Cairn can feed.
    pub fn load(
        runtime: &Runtime,
        file: &Path,
        shown_as: &str,
        sessions: usize,
    ) -> Result<Self, ModelError> {
        let load_error = |e: String| ModelError::Load(shown_as.to_owned(), e);
        let mut loaded = Vec::with_capacity(sessions.max(1));
        for _ in 0..sessions.max(1) {
            let mut builder = Session::builder(&runtime.environment)
                .and_then(|b| b.with_intra_threads(1).map_err(ort::Error::from))
                .map_err(|e| load_error(e.to_string()))?;
            loaded.push(
                builder
                    .commit_from_file(file)
                    .map_err(|e| load_error(e.to_string()))?,
            );
        }
        let session = &loaded[0];
        let mut inputs = Vec::new();
        for input in session.inputs() {
            let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
                return Err(ModelError::Unsupported(format!(
                    "{shown_as}: input {:?} is a {}, and cairn serve feeds tensors only",
                    input.name(),
                    input.dtype()
                )));
            };
            let elem = Elem::of(*ty).ok_or_else(|| {
                ModelError::Unsupported(format!(
                    "{shown_as}: input {:?} holds {ty} elements, which cairn serve does not feed (float, double, int32, int64, bool, string)",
                    input.name()
                ))
            })?;
            inputs.push(InputSpec {
                name: input.name().to_owned(),
                elem,
                shape: shape.iter().copied().collect(),
            });
        }
        let outputs = session
            .outputs()
            .iter()
            .map(|o| o.name().to_owned())
            .collect();
        Ok(Self {
            sessions: loaded.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            inputs,
            outputs,
        })
    }

    /// An idle session if there is one, else the next one in turn (waited for). A panic
    /// inside a run poisons its lock; the session is still usable (onnxruntime keeps no
    /// state between runs), so the poison is cleared rather than spread.
    fn idle_session(&self) -> MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        (0..n)
            .find_map(|i| self.sessions[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| {
                self.sessions[start % n]
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
            })
    }

    pub fn inputs(&self) -> &[InputSpec] {
        &self.inputs
    }

    /// Runs the model on named tensors (shape, data); answers each output, in the
    /// model's order, as JSON: tensors as nested arrays with their shape, sequences of
    /// maps (scikit-learn's ZipMap) as arrays of objects.
    pub fn run(
        &self,
        feeds: Vec<(String, Vec<i64>, TensorData)>,
    ) -> Result<Vec<Output>, ModelError> {
        let run_error = |e: ort::Error| ModelError::Run(e.to_string());
        let mut values: Vec<(String, DynValue)> = Vec::with_capacity(feeds.len());
        for (name, shape, data) in feeds {
            values.push((name, to_value(shape, data).map_err(run_error)?));
        }
        let mut session = self.idle_session();
        let results = session.run(values).map_err(run_error)?;
        let mut outputs = Vec::with_capacity(self.outputs.len());
        for name in &self.outputs {
            let value = results
                .get(name.as_str())
                .ok_or_else(|| ModelError::Run(format!("output {name:?} is missing")))?;
            outputs.push(Output {
                name: name.clone(),
                value: to_output(value).map_err(run_error)?,
            });
        }
        Ok(outputs)
    }
}

/// One output of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub name: String,
    pub value: OutputValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OutputValue {
    /// A tensor: its shape and its elements (row-major) as JSON values.
    Tensor {
        shape: Vec<usize>,
        elements: Vec<Value>,
    },
    /// A sequence of maps, one per row (ZipMap's probabilities per class).
    Maps(Vec<Map<String, Value>>),
}

fn to_value(shape: Vec<i64>, data: TensorData) -> ort::Result<DynValue> {
    use ort::value::Tensor;
    Ok(match data {
        TensorData::F32(v) => Tensor::from_array((shape, v))?.into_dyn(),
        TensorData::F64(v) => Tensor::from_array((shape, v))?.into_dyn(),
        TensorData::I64(v) => Tensor::from_array((shape, v))?.into_dyn(),
        TensorData::I32(v) => Tensor::from_array((shape, v))?.into_dyn(),
        TensorData::Bool(v) => Tensor::from_array((shape, v))?.into_dyn(),
        TensorData::Str(v) => {
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            let array = ndarray::ArrayD::from_shape_vec(dims, v)
                .map_err(|e| ort::Error::new(e.to_string()))?;
            Tensor::from_string_array(&array)?.into_dyn()
        }
    })
}

/// A float as JSON: non-finite values (which JSON cannot carry) become null.
fn float(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn to_output(value: &DynValue) -> ort::Result<OutputValue> {
    match value.dtype() {
        ValueType::Tensor { ty, .. } => {
            let (shape, elements) = tensor_elements(value, *ty)?;
            Ok(OutputValue::Tensor { shape, elements })
        }
        ValueType::Sequence(inner) if matches!(**inner, ValueType::Map { .. }) => {
            let maps = value.try_extract_sequence::<ort::value::DynMapValueType>()?;
            maps.iter()
                .map(map_to_json)
                .collect::<ort::Result<_>>()
                .map(OutputValue::Maps)
        }
        other => Err(ort::Error::new(format!(
            "the model answered a {other}, which cairn serve cannot encode"
        ))),
    }
}

fn tensor_elements(
    value: &DynValue,
    ty: TensorElementType,
) -> ort::Result<(Vec<usize>, Vec<Value>)> {
    macro_rules! numbers {
        ($t:ty, $conv:expr) => {{
            let (shape, data) = value.try_extract_tensor::<$t>()?;
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                data.iter().map($conv).collect(),
            )
        }};
    }
    Ok(match ty {
        TensorElementType::Float32 => numbers!(f32, |&x| float(f64::from(x))),
        TensorElementType::Float64 => numbers!(f64, |&x| float(x)),
        TensorElementType::Int64 => numbers!(i64, |&x| Value::from(x)),
        TensorElementType::Int32 => numbers!(i32, |&x| Value::from(x)),
        TensorElementType::Int16 => numbers!(i16, |&x| Value::from(x)),
        TensorElementType::Int8 => numbers!(i8, |&x| Value::from(x)),
        TensorElementType::Uint64 => numbers!(u64, |&x| Value::from(x)),
        TensorElementType::Uint32 => numbers!(u32, |&x| Value::from(x)),
        TensorElementType::Uint16 => numbers!(u16, |&x| Value::from(x)),
        TensorElementType::Uint8 => numbers!(u8, |&x| Value::from(x)),
        TensorElementType::Bool => numbers!(bool, |&x| Value::from(x)),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings()?;
            (
                shape.iter().map(|&d| d.max(0) as usize).collect(),
                strings.into_iter().map(Value::from).collect(),
            )
        }
        other => {
            return Err(ort::Error::new(format!(
                "the model answered {other} elements, which cairn serve cannot encode"
            )));
        }
    })
}

/// One map of a ZipMap output: class → probability, keys written as JSON strings.
fn map_to_json(map: &ort::value::DynMap) -> ort::Result<Map<String, Value>> {
    let ValueType::Map { key, .. } = map.dtype() else {
        return Err(ort::Error::new("a sequence element is not a map"));
    };
    let mut out = Map::new();
    match key {
        TensorElementType::String => {
            for (k, v) in map.try_extract_key_values::<String, f32>()? {
                out.insert(k, float(f64::from(v)));
            }
        }
        _ => {
            for (k, v) in map.try_extract_key_values::<i64, f32>()? {
                out.insert(k.to_string(), float(f64::from(v)));
            }
        }
    }
    Ok(out)
}
