//! A small pickle virtual machine: the part of the protocol (versions 2 to 5) that `torch.save`
//! writes, run without Python.
//!
//! Nothing is executed. Globals stay names, `REDUCE`/`NEWOBJ` stay records of the call
//! ([`Call`]) and persistent ids (torch's storages) stay the value the pickler wrote; the torch
//! layer gives meaning to the few calls it knows. The one call interpreted here is
//! `collections.OrderedDict()`, which becomes an empty dict because the stream then fills it with
//! `SETITEMS`.
//!
//! Containers are immutable snapshots shared through `Rc`: a value fetched from the memo is the
//! value as it was when memoised, not a live reference. `torch.save` never fetches a container it
//! later mutates, so this loses nothing for checkpoints and makes reference cycles impossible.
//! Malformed input is an error, never a panic: every read is bounds-checked, nesting depth is
//! capped, and copies forced by copy-on-write are budgeted so a hostile stream cannot blow up.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

/// Highest pickle protocol understood.
const MAX_PROTOCOL: u8 = 5;
/// Deepest nesting of containers accepted (torch's state dicts need about 4).
const MAX_DEPTH: u32 = 200;

/// A value built by the machine.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(Rc<str>),
    /// A bytes object.
    Bytes(Rc<[u8]>),
    /// A tuple.
    Tuple(Rc<[Value]>),
    /// A list.
    List(Rc<Vec<Value>>),
    /// A dict (or `OrderedDict`) as its items in insertion order; later duplicates win.
    Dict(Rc<Vec<(Value, Value)>>),
    /// A global name (`module.name`), not resolved.
    Global(Rc<(String, String)>),
    /// A call recorded by `REDUCE` or `NEWOBJ`, with the state `BUILD` gave it.
    Call(Rc<Call>),
    /// A persistent id, as the pickler wrote it (torch: a storage description tuple).
    PersistentId(Rc<Value>),
}

/// `callable(*args)`, unevaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// What was called (usually a [`Value::Global`]).
    pub callable: Value,
    /// The argument tuple.
    pub args: Value,
    /// The state set by `BUILD`, if any.
    pub state: Option<Value>,
}

impl Value {
    /// `(module, name)` when this is a global.
    pub fn as_global(&self) -> Option<(&str, &str)> {
        match self {
            Value::Global(g) => Some((g.0.as_str(), g.1.as_str())),
            _ => None,
        }
    }

    /// A short name of the value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "global",
            Value::Call(_) => "object",
            Value::PersistentId(_) => "persistent id",
        }
    }
}

/// Why a pickle stream could not be read: the byte offset and what was wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct PickleError {
    /// Offset of the opcode being executed.
    pub offset: usize,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for PickleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for PickleError {}

/// Runs the pickle program in `data` and returns the value it stops with.
pub fn load(data: &[u8]) -> Result<Value, PickleError> {
    let mut machine = Machine {
        data,
        pos: 0,
        op_start: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        copy_budget: data.len().saturating_mul(16).saturating_add(1 << 20),
    };
    machine.run()
}

/// A stack slot: the value and the depth of its deepest nested container.
#[derive(Clone)]
struct Item {
    value: Value,
    depth: u32,
}

impl Item {
    fn leaf(value: Value) -> Self {
        Self { value, depth: 0 }
    }
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    stack: Vec<Item>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Item>,
    /// Elements that copy-on-write may still copy.
    copy_budget: usize,
}

/// Pickle opcodes, named as in CPython's `pickle.py`.
mod op {
    pub const PROTO: u8 = 0x80;
    pub const FRAME: u8 = 0x95;
    pub const STOP: u8 = b'.';
    pub const MARK: u8 = b'(';
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_LIST: u8 = b']';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const TUPLE1: u8 = 0x85;
    pub const TUPLE2: u8 = 0x86;
    pub const TUPLE3: u8 = 0x87;
    pub const BININT: u8 = b'J';
    pub const BININT1: u8 = b'K';
    pub const BININT2: u8 = b'M';
    pub const LONG1: u8 = 0x8a;
    pub const BINFLOAT: u8 = b'G';
    pub const NONE: u8 = b'N';
    pub const NEWTRUE: u8 = 0x88;
    pub const NEWFALSE: u8 = 0x89;
    pub const BINUNICODE: u8 = b'X';
    pub const SHORT_BINUNICODE: u8 = 0x8c;
    pub const BINUNICODE8: u8 = 0x8d;
    pub const BINBYTES: u8 = b'B';
    pub const SHORT_BINBYTES: u8 = b'C';
    pub const BINBYTES8: u8 = 0x8e;
    pub const GLOBAL: u8 = b'c';
    pub const STACK_GLOBAL: u8 = 0x93;
    pub const BINPUT: u8 = b'q';
    pub const LONG_BINPUT: u8 = b'r';
    pub const MEMOIZE: u8 = 0x94;
    pub const BINGET: u8 = b'h';
    pub const LONG_BINGET: u8 = b'j';
    pub const SETITEM: u8 = b's';
    pub const SETITEMS: u8 = b'u';
    pub const APPEND: u8 = b'a';
    pub const APPENDS: u8 = b'e';
    pub const REDUCE: u8 = b'R';
    pub const NEWOBJ: u8 = 0x81;
    pub const BUILD: u8 = b'b';
    pub const BINPERSID: u8 = b'Q';
}

impl<'a> Machine<'a> {
    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            self.op_start = self.pos;
            let code = self.u8()?;
            match code {
                op::PROTO => {
                    let version = self.u8()?;
                    if version > MAX_PROTOCOL {
                        return Err(self.err(format!("unsupported pickle protocol {version}")));
                    }
                }
                // Frames only group opcodes for buffered reading; the data is already in memory.
                op::FRAME => {
                    self.take(8)?;
                }
                op::STOP => return Ok(self.pop()?.value),
                op::MARK => self.marks.push(self.stack.len()),
                op::EMPTY_DICT => self.push(Item::leaf(Value::Dict(Rc::default()))),
                op::EMPTY_LIST => self.push(Item::leaf(Value::List(Rc::default()))),
                op::EMPTY_TUPLE => self.push(Item::leaf(Value::Tuple(Rc::from([])))),
                op::TUPLE => {
                    let items = self.pop_mark()?;
                    self.push_tuple(items)?;
                }
                op::TUPLE1 | op::TUPLE2 | op::TUPLE3 => {
                    let n = usize::from(code - op::TUPLE1) + 1;
                    let items = self.pop_n(n)?;
                    self.push_tuple(items)?;
                }
                op::BININT => {
                    let b = self.take(4)?;
                    self.push(Item::leaf(Value::Int(i32::from_le_bytes([b[0], b[1], b[2], b[3]]).into())));
                }
                op::BININT1 => {
                    let v = self.u8()?;
                    self.push(Item::leaf(Value::Int(v.into())));
                }
                op::BININT2 => {
                    let b = self.take(2)?;
                    self.push(Item::leaf(Value::Int(u16::from_le_bytes([b[0], b[1]]).into())));
                }
                op::LONG1 => {
                    let n = usize::from(self.u8()?);
                    let v = self.long(n)?;
                    self.push(Item::leaf(Value::Int(v)));
                }
                op::BINFLOAT => {
                    let b = self.take(8)?;
                    let mut bytes = [0u8; 8];
                    bytes.copy_from_slice(b);
                    self.push(Item::leaf(Value::Float(f64::from_be_bytes(bytes))));
                }
                op::NONE => self.push(Item::leaf(Value::None)),
                op::NEWTRUE => self.push(Item::leaf(Value::Bool(true))),
                op::NEWFALSE => self.push(Item::leaf(Value::Bool(false))),
                op::SHORT_BINUNICODE | op::BINUNICODE | op::BINUNICODE8 => {
                    let n = self.length(code)?;
                    self.push_str(n)?;
                }
                op::SHORT_BINBYTES | op::BINBYTES | op::BINBYTES8 => {
                    let n = self.length(code)?;
                    self.push_bytes(n)?;
                }
                op::GLOBAL => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push(Item::leaf(Value::Global(Rc::new((module, name)))));
                }
                op::STACK_GLOBAL => {
                    let name = self.pop_str()?;
                    let module = self.pop_str()?;
                    self.push(Item::leaf(Value::Global(Rc::new((module, name)))));
                }
                op::BINPUT | op::LONG_BINPUT => {
                    let index = self.memo_index(code)?;
                    self.memo_put(index)?;
                }
                op::MEMOIZE => {
                    let index = u32::try_from(self.memo.len()).map_err(|_| self.err("memo is full"))?;
                    self.memo_put(index)?;
                }
                op::BINGET | op::LONG_BINGET => {
                    let index = self.memo_index(code)?;
                    self.memo_get(index)?;
                }
                op::SETITEM | op::SETITEMS => {
                    let items = self.operands(code)?;
                    self.set_items(items)?;
                }
                op::APPEND | op::APPENDS => {
                    let items = self.operands(code)?;
                    self.append(items)?;
                }
                op::REDUCE | op::NEWOBJ => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    self.push_call(callable, args)?;
                }
                op::BUILD => self.build()?,
                op::BINPERSID => {
                    let pid = self.pop()?;
                    let depth = self.nest(pid.depth)?;
                    self.push(Item { value: Value::PersistentId(Rc::new(pid.value)), depth });
                }
                other => {
                    return Err(self.err(format!("unsupported opcode 0x{other:02x} (not written by torch.save)")));
                }
            }
        }
    }

    fn err(&self, message: impl Into<String>) -> PickleError {
        PickleError { offset: self.op_start, message: message.into() }
    }

    // --- reading the program ---

    fn take(&mut self, n: usize) -> Result<&'a [u8], PickleError> {
        let data = self.data;
        let end = self.pos.checked_add(n).filter(|&end| end <= data.len());
        let Some(end) = end else {
            return Err(self.err(format!("truncated: needs {n} more bytes, {} left", data.len() - self.pos)));
        };
        let bytes = &data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        if self.pos >= self.data.len() {
            return Err(self.err("truncated: the stream ends before STOP"));
        }
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, PickleError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The length prefix of a string or bytes opcode: one byte for the `SHORT_` forms, eight
    /// for the `8` forms, four for the others.
    fn length(&mut self, code: u8) -> Result<usize, PickleError> {
        match code {
            op::SHORT_BINUNICODE | op::SHORT_BINBYTES => Ok(usize::from(self.u8()?)),
            op::BINUNICODE8 | op::BINBYTES8 => self.len_u64(),
            _ => self.len_u32(),
        }
    }

    /// The memo index of a `BINPUT`/`BINGET` (one byte) or of their `LONG_` forms (four).
    fn memo_index(&mut self, code: u8) -> Result<u32, PickleError> {
        match code {
            op::BINPUT | op::BINGET => Ok(self.u8()?.into()),
            _ => self.u32(),
        }
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        let n = self.u32()?;
        usize::try_from(n).map_err(|_| self.err("length does not fit in memory"))
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        let b = self.take(8)?;
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(b);
        usize::try_from(u64::from_le_bytes(bytes)).map_err(|_| self.err("length does not fit in memory"))
    }

    /// A little-endian two's-complement integer of `n` bytes.
    fn long(&mut self, n: usize) -> Result<i64, PickleError> {
        if n > 8 {
            return Err(self.err(format!("integer of {n} bytes does not fit in 64 bits")));
        }
        let b = self.take(n)?;
        let mut bytes = if b.last().is_some_and(|&last| last & 0x80 != 0) { [0xff; 8] } else { [0; 8] };
        bytes[..n].copy_from_slice(b);
        Ok(i64::from_le_bytes(bytes))
    }

    /// A newline-terminated UTF-8 line (the arguments of `GLOBAL`).
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.data[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return Err(self.err("truncated: GLOBAL name without a newline"));
        };
        let bytes = self.take(n + 1)?;
        std::str::from_utf8(&bytes[..n]).map(str::to_owned).map_err(|_| self.err("GLOBAL name is not UTF-8"))
    }

    fn push_str(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        let s = std::str::from_utf8(bytes).map_err(|_| self.err("string is not valid UTF-8"))?;
        self.push(Item::leaf(Value::Str(Rc::from(s))));
        Ok(())
    }

    fn push_bytes(&mut self, n: usize) -> Result<(), PickleError> {
        let bytes = self.take(n)?;
        self.push(Item::leaf(Value::Bytes(Rc::from(bytes))));
        Ok(())
    }

    // --- the stack ---

    fn push(&mut self, item: Item) {
        self.stack.push(item);
    }

    fn pop(&mut self) -> Result<Item, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        self.stack.pop().ok_or_else(|| self.err("stack underflow"))
    }

    fn pop_str(&mut self) -> Result<String, PickleError> {
        match self.pop()?.value {
            Value::Str(s) => Ok(s.to_string()),
            other => Err(self.err(format!("STACK_GLOBAL expects strings, found {}", other.kind()))),
        }
    }

    fn pop_n(&mut self, n: usize) -> Result<Vec<Item>, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() < floor + n {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.split_off(self.stack.len() - n))
    }

    /// Everything above the most recent mark, which is removed.
    /// What `SETITEM` (a key and a value) or `APPEND` (one item) adds, or their plural forms
    /// (everything down to the mark).
    fn operands(&mut self, code: u8) -> Result<Vec<Item>, PickleError> {
        match code {
            op::SETITEM => self.pop_n(2),
            op::APPEND => self.pop_n(1),
            _ => self.pop_mark(),
        }
    }

    fn pop_mark(&mut self) -> Result<Vec<Item>, PickleError> {
        let mark = self.marks.pop().ok_or_else(|| self.err("no MARK on the stack"))?;
        if mark > self.stack.len() {
            return Err(self.err("MARK above the stack top"));
        }
        Ok(self.stack.split_off(mark))
    }

    /// The depth of a container holding items of depth `inner`, checked against the cap.
    fn nest(&self, inner: u32) -> Result<u32, PickleError> {
        let depth = inner + 1;
        if depth > MAX_DEPTH {
            return Err(self.err(format!("values nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth)
    }

    fn push_tuple(&mut self, items: Vec<Item>) -> Result<(), PickleError> {
        let depth = self.nest(items.iter().map(|i| i.depth).max().unwrap_or(0))?;
        let values: Vec<Value> = items.into_iter().map(|i| i.value).collect();
        self.push(Item { value: Value::Tuple(Rc::from(values)), depth });
        Ok(())
    }

    fn push_call(&mut self, callable: Item, args: Item) -> Result<(), PickleError> {
        // NOTE: `OrderedDict()` must be a real dict: the stream fills it with SETITEMS next.
        if callable.value.as_global() == Some(("collections", "OrderedDict"))
            && matches!(&args.value, Value::Tuple(t) if t.is_empty())
        {
            self.push(Item::leaf(Value::Dict(Rc::default())));
            return Ok(());
        }
        let depth = self.nest(callable.depth.max(args.depth))?;
        let call = Call { callable: callable.value, args: args.value, state: None };
        self.push(Item { value: Value::Call(Rc::new(call)), depth });
        Ok(())
    }

    // --- the memo ---

    fn memo_put(&mut self, index: u32) -> Result<(), PickleError> {
        let top = self.stack.last().ok_or_else(|| self.err("memoising with an empty stack"))?.clone();
        self.memo.insert(index, top);
        Ok(())
    }

    fn memo_get(&mut self, index: u32) -> Result<(), PickleError> {
        let item = self.memo.get(&index).cloned().ok_or_else(|| self.err(format!("memo key {index} is not set")))?;
        self.push(item);
        Ok(())
    }

    // --- mutation of the object on top of the stack ---

    /// Charges `n` element copies to the budget (copy-on-write of a memoised container).
    fn charge(&mut self, n: usize) -> Result<(), PickleError> {
        self.copy_budget = self.copy_budget.checked_sub(n).ok_or_else(|| self.err("too many container copies"))?;
        Ok(())
    }

    fn top_index(&self) -> Result<usize, PickleError> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(self.err("stack underflow"));
        }
        Ok(self.stack.len() - 1)
    }

    /// The container on top of the stack that receives `items`: its index, and its depth once
    /// it holds them.
    fn receiver(&self, items: &[Item]) -> Result<(usize, u32), PickleError> {
        let top = self.top_index()?;
        let depth = self.nest(items.iter().map(|i| i.depth).max().unwrap_or(0))?.max(self.stack[top].depth);
        Ok((top, depth))
    }

    fn set_items(&mut self, items: Vec<Item>) -> Result<(), PickleError> {
        if items.len() % 2 != 0 {
            return Err(self.err("SETITEMS with an odd number of items"));
        }
        let (top, depth) = self.receiver(&items)?;
        let Value::Dict(dict) = &self.stack[top].value else {
            return Err(self.err(format!("SETITEM on a {}, not a dict", self.stack[top].value.kind())));
        };
        if Rc::strong_count(dict) > 1 {
            self.charge(dict.len())?;
        }
        let Value::Dict(dict) = &mut self.stack[top].value else { unreachable!("checked above") };
        let dict = Rc::make_mut(dict);
        let mut items = items.into_iter().map(|i| i.value);
        while let (Some(key), Some(value)) = (items.next(), items.next()) {
            dict.push((key, value));
        }
        self.stack[top].depth = depth;
        Ok(())
    }

    fn append(&mut self, items: Vec<Item>) -> Result<(), PickleError> {
        let (top, depth) = self.receiver(&items)?;
        let Value::List(list) = &self.stack[top].value else {
            return Err(self.err(format!("APPEND on a {}, not a list", self.stack[top].value.kind())));
        };
        if Rc::strong_count(list) > 1 {
            self.charge(list.len())?;
        }
        let Value::List(list) = &mut self.stack[top].value else { unreachable!("checked above") };
        Rc::make_mut(list).extend(items.into_iter().map(|i| i.value));
        self.stack[top].depth = depth;
        Ok(())
    }

    /// `BUILD`: sets an object's state. A dict's state (an `OrderedDict`'s `_metadata`) is dropped.
    fn build(&mut self) -> Result<(), PickleError> {
        let state = self.pop()?;
        let top = self.top_index()?;
        let depth = self.nest(state.depth)?.max(self.stack[top].depth);
        let kind = self.stack[top].value.kind();
        match &mut self.stack[top].value {
            Value::Dict(_) => Ok(()),
            Value::Call(call) => {
                Rc::make_mut(call).state = Some(state.value);
                self.stack[top].depth = depth;
                Ok(())
            }
            _ => Err(self.err(format!("BUILD on a {kind}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::Str(Rc::from(text))
    }

    #[test]
    fn reads_a_protocol_2_dict() {
        // pickle.dumps({'a': (1, -2, 3.5, None, True)}, protocol=2)
        let data =
            b"\x80\x02}q\x00X\x01\x00\x00\x00aq\x01(K\x01J\xfe\xff\xff\xffG@\x0c\x00\x00\x00\x00\x00\x00N\x88tq\x02s.";
        let value = load(data).unwrap();
        let tuple =
            Value::Tuple(Rc::from([Value::Int(1), Value::Int(-2), Value::Float(3.5), Value::None, Value::Bool(true)]));
        assert_eq!(value, Value::Dict(Rc::new(vec![(s("a"), tuple)])));
    }

    #[test]
    fn reads_long1_and_lists() {
        // pickle.dumps([2**40, -(2**40)], protocol=2)
        let data = b"\x80\x02]q\x00(\x8a\x06\x00\x00\x00\x00\x00\x01\x8a\x06\x00\x00\x00\x00\x00\xffe.";
        let value = load(data).unwrap();
        assert_eq!(value, Value::List(Rc::new(vec![Value::Int(1 << 40), Value::Int(-(1 << 40))])));
    }

    #[test]
    fn memo_returns_snapshots() {
        // A dict memoised empty, filled, then fetched: the memo still holds the empty dict.
        let data = b"}q\x00X\x01\x00\x00\x00aK\x01sh\x00.";
        let value = load(data).unwrap();
        assert_eq!(value, Value::Dict(Rc::default()));
    }

    #[test]
    fn malformed_streams_are_errors() {
        for (data, expected) in [
            (&b"\x80\x02}"[..], "truncated"),
            (b"X\xff\xff\xff\xffab", "truncated"),
            (b"t.", "no MARK"),
            (b"h\x05.", "memo key 5"),
            (b"\x80\x09.", "protocol 9"),
            (b"K\x01s.", "stack underflow"),
            (b"K\x00(K\x01K\x02u.", "SETITEM on a int"),
            (b"\x8a\x09\x00.", "64 bits"),
            (b"S'a'\n.", "unsupported opcode 0x53"),
        ] {
            let err = load(data).unwrap_err().to_string();
            assert!(err.contains(expected), "{data:?}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut data = vec![b')'];
        data.extend(std::iter::repeat_n(0x85u8, 100_000));
        data.push(b'.');
        assert!(load(&data).unwrap_err().to_string().contains("nested deeper"));
    }

    #[test]
    fn repeated_copies_are_bounded() {
        // Memoise the dict after each SETITEM so every SETITEM must copy it.
        let mut data = b"}".to_vec();
        for _ in 0..20_000 {
            data.extend_from_slice(b"\x94K\x01K\x02s");
        }
        data.push(b'.');
        let err = load(&data).unwrap_err().to_string();
        assert!(err.contains("too many container copies"), "{err}");
    }
}
