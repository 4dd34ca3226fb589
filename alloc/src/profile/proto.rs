//! pprof's messages (github.com/google/pprof, proto/profile.proto), the subset of fields
//! Tricolor writes, with profile.proto's names and tags, so a program can read a profile
//! back: `Profile::decode(&bytes[..])` (`prost::Message`), then [`Profile::stack`] and
//! [`Profile::label`]. String fields are indexes into `string_table`.

use prost::Message;

/// A whole profile: samples, the locations and functions they name, and the string table.
#[derive(Clone, PartialEq, Message)]
pub struct Profile {
    /// What each entry of a sample's `value` counts.
    #[prost(message, repeated, tag = "1")]
    pub sample_type: Vec<ValueType>,
    /// The samples.
    #[prost(message, repeated, tag = "2")]
    pub sample: Vec<Sample>,
    /// The address ranges the locations fall in.
    #[prost(message, repeated, tag = "3")]
    pub mapping: Vec<Mapping>,
    /// The locations the samples' stacks name.
    #[prost(message, repeated, tag = "4")]
    pub location: Vec<Location>,
    /// The functions the locations' lines name.
    #[prost(message, repeated, tag = "5")]
    pub function: Vec<Function>,
    /// Every string the profile uses; entry 0 is "".
    #[prost(string, repeated, tag = "6")]
    pub string_table: Vec<String>,
    /// When the profile was taken, in nanoseconds since the Unix epoch.
    #[prost(int64, tag = "9")]
    pub time_nanos: i64,
    /// The kind of event between two samples.
    #[prost(message, optional, tag = "11")]
    pub period_type: Option<ValueType>,
    /// The number of events between two samples (the sampling rate).
    #[prost(int64, tag = "12")]
    pub period: i64,
    /// Free-form comments, as string-table indexes.
    #[prost(int64, repeated, tag = "13")]
    pub comment: Vec<i64>,
}

/// A sample value's kind and unit (`alloc_space`, `bytes`), as string-table indexes.
#[derive(Clone, PartialEq, Message)]
pub struct ValueType {
    /// The kind, such as `alloc_space` (a string-table index).
    #[prost(int64, tag = "1")]
    pub r#type: i64,
    /// The unit, such as `bytes` (a string-table index).
    #[prost(int64, tag = "2")]
    pub unit: i64,
}

/// One stack and its values, one per entry of `Profile::sample_type`.
#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    /// The stack as `Location::id`s, innermost first.
    #[prost(uint64, repeated, tag = "1")]
    pub location_id: Vec<u64>,
    /// One value per `Profile::sample_type`.
    #[prost(int64, repeated, tag = "2")]
    pub value: Vec<i64>,
    /// Labels attached to the sample.
    #[prost(message, repeated, tag = "3")]
    pub label: Vec<Label>,
}

/// A key with a string or numeric value attached to a sample.
#[derive(Clone, PartialEq, Message)]
pub struct Label {
    /// The key (a string-table index).
    #[prost(int64, tag = "1")]
    pub key: i64,
    /// The string value (a string-table index; 0 when the value is numeric).
    #[prost(int64, tag = "2")]
    pub str: i64,
    /// The numeric value.
    #[prost(int64, tag = "3")]
    pub num: i64,
    /// The numeric value's unit (a string-table index; 0 for none).
    #[prost(int64, tag = "4")]
    pub num_unit: i64,
}

/// An address range of the process and the object file mapped there.
#[derive(Clone, PartialEq, Message)]
pub struct Mapping {
    /// A nonzero id, unique in the profile.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The range's first address.
    #[prost(uint64, tag = "2")]
    pub memory_start: u64,
    /// The address just past the range.
    #[prost(uint64, tag = "3")]
    pub memory_limit: u64,
    /// The file offset mapped at `memory_start`.
    #[prost(uint64, tag = "4")]
    pub file_offset: u64,
    /// The object file's path (a string-table index).
    #[prost(int64, tag = "5")]
    pub filename: i64,
    /// The object file's build id (a string-table index).
    #[prost(int64, tag = "6")]
    pub build_id: i64,
    /// Whether the locations in this range have their functions resolved.
    #[prost(bool, tag = "7")]
    pub has_functions: bool,
    /// Whether the locations in this range have their source files resolved.
    #[prost(bool, tag = "8")]
    pub has_filenames: bool,
    /// Whether the locations in this range have their line numbers resolved.
    #[prost(bool, tag = "9")]
    pub has_line_numbers: bool,
    /// Whether the locations in this range have their inlined calls resolved.
    #[prost(bool, tag = "10")]
    pub has_inline_frames: bool,
}

/// One address in the program and the source lines (inlined calls) it stands for.
#[derive(Clone, PartialEq, Message)]
pub struct Location {
    /// A nonzero id, unique in the profile.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The `Mapping::id` of the range holding `address` (0: none).
    #[prost(uint64, tag = "2")]
    pub mapping_id: u64,
    /// The instruction address.
    #[prost(uint64, tag = "3")]
    pub address: u64,
    /// The source lines at `address`: the innermost inlined call first, the function the
    /// address is in last.
    #[prost(message, repeated, tag = "4")]
    pub line: Vec<Line>,
}

/// A function and line a location belongs to.
#[derive(Clone, PartialEq, Message)]
pub struct Line {
    /// The `Function::id`.
    #[prost(uint64, tag = "1")]
    pub function_id: u64,
    /// The line number (0 when unknown).
    #[prost(int64, tag = "2")]
    pub line: i64,
}

/// A function's names and source file.
#[derive(Clone, PartialEq, Message)]
pub struct Function {
    /// A nonzero id, unique in the profile.
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// The name as shown to people (a string-table index).
    #[prost(int64, tag = "2")]
    pub name: i64,
    /// The name as the system knows it, such as a mangled symbol (a string-table index).
    #[prost(int64, tag = "3")]
    pub system_name: i64,
    /// The source file (a string-table index).
    #[prost(int64, tag = "4")]
    pub filename: i64,
}

impl Profile {
    /// The function names of `s`'s stack, innermost first (inlined frames included).
    pub fn stack(&self, s: &Sample) -> Vec<&str> {
        let mut names = Vec::new();
        for id in &s.location_id {
            let Some(loc) = self.location.iter().find(|l| l.id == *id) else {
                continue;
            };
            for line in &loc.line {
                if let Some(f) = self.function.iter().find(|f| f.id == line.function_id) {
                    names.push(self.string(f.name));
                }
            }
        }
        names
    }

    /// The string label `key` of `s`, if it has one.
    pub fn label(&self, s: &Sample, key: &str) -> Option<&str> {
        s.label
            .iter()
            .find(|l| self.string(l.key) == key && l.str != 0)
            .map(|l| self.string(l.str))
    }

    /// String `i` of the table ("" when out of range).
    pub fn string(&self, i: i64) -> &str {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.string_table.get(i))
            .map_or("", String::as_str)
    }

    /// Decodes a profile written by [`super::dump`] (uncompressed).
    pub fn read(bytes: &[u8]) -> Result<Profile, prost::DecodeError> {
        Profile::decode(bytes)
    }
}
