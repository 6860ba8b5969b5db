package config

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ExprOp is the kind of an expression node.
type ExprOp byte

// The kinds of expression node.
const (
	// OpNumber is a number literal.
	OpNumber ExprOp = iota + 1
	// OpColumn is a column of the row.
	OpColumn
	// OpNeg is a unary minus of Left.
	OpNeg
	// OpAdd, OpSub, OpMul and OpDiv apply to Left and Right.
	OpAdd
	OpSub
	OpMul
	OpDiv
)

// Limits that keep a hostile or mistaken expression cheap to parse and to
// evaluate on every row.
const (
	MaxExpressionLength = 1000
	MaxExpressionDepth  = 64
)

// Expr is a node of a parsed value expression: a number, a column, or an
// operator applied to its operands. Package collector evaluates it on each
// row; parsing it here lets Load refuse a bad expression with its path.
type Expr struct {
	Op     ExprOp
	Number float64
	Column string
	Left   *Expr
	Right  *Expr
}

// Columns returns the columns e reads, each once, in order of appearance.
func (e *Expr) Columns() []string {
	var cols []string
	seen := map[string]bool{}
	var walk func(*Expr)
	walk = func(n *Expr) {
		if n == nil {
			return
		}
		if n.Op == OpColumn && !seen[n.Column] {
			seen[n.Column] = true
			cols = append(cols, n.Column)
		}
		walk(n.Left)
		walk(n.Right)
	}
	walk(e)
	return cols
}

// String renders e fully bracketed, which shows how it was read.
func (e *Expr) String() string {
	switch e.Op {
	case OpNumber:
		return strconv.FormatFloat(e.Number, 'g', -1, 64)
	case OpColumn:
		if isBareName(e.Column) {
			return e.Column
		}
		// As written: a quoted name has no escapes, and holds no quote.
		return `"` + e.Column + `"`
	case OpNeg:
		return "(-" + e.Left.String() + ")"
	}
	return "(" + e.Left.String() + " " + string(opSymbol[e.Op]) + " " + e.Right.String() + ")"
}

var opSymbol = map[ExprOp]byte{OpAdd: '+', OpSub: '-', OpMul: '*', OpDiv: '/'}

func isWordByte(d byte) bool {
	return d == '_' || d >= 'a' && d <= 'z' || d >= 'A' && d <= 'Z' || d >= '0' && d <= '9'
}

func isBareName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// ParseExpression parses a value expression: numbers, column names (bare,
// as letters, digits and underscores, 2_years_or_more included, or in double
// quotes when they hold other characters, e.g. "Vacancy FTE"), the operators + - * / with the usual
// precedence, a unary minus and brackets.
func ParseExpression(s string) (*Expr, error) {
	if len(s) > MaxExpressionLength {
		return nil, fmt.Errorf("the expression is %d characters long, more than %d", len(s), MaxExpressionLength)
	}
	p := &exprParser{src: s}
	p.next()
	if p.tok.kind == tokEOF && p.err == nil {
		return nil, errors.New("the expression is empty")
	}
	e := p.sum(0)
	if p.err == nil && p.tok.kind != tokEOF {
		p.fail("unexpected %s", p.tok.describe())
	}
	if p.err != nil {
		return nil, p.err
	}
	return e, nil
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokNumber
	tokName
	tokOp
	tokOpen
	tokClose
)

type token struct {
	kind tokKind
	pos  int // byte offset, for messages
	text string
	num  float64
	op   byte
}

func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of the expression"
	case tokNumber:
		return fmt.Sprintf("number %s at character %d", t.text, t.pos+1)
	case tokName:
		return fmt.Sprintf("column %q at character %d", t.text, t.pos+1)
	}
	return fmt.Sprintf("%q at character %d", t.text, t.pos+1)
}

type exprParser struct {
	src string
	i   int
	tok token
	err error
}

func (p *exprParser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
	p.tok = token{kind: tokEOF, pos: len(p.src)}
}

// next reads the next token into p.tok.
func (p *exprParser) next() {
	if p.err != nil {
		return
	}
	for p.i < len(p.src) && strings.IndexByte(" \t\r\n", p.src[p.i]) >= 0 {
		p.i++
	}
	start := p.i
	if p.i >= len(p.src) {
		p.tok = token{kind: tokEOF, pos: start}
		return
	}
	c := p.src[p.i]
	switch {
	case c == '+' || c == '-' || c == '*' || c == '/':
		p.i++
		p.tok = token{kind: tokOp, pos: start, text: string(c), op: c}
	case c == '(':
		p.i++
		p.tok = token{kind: tokOpen, pos: start, text: "("}
	case c == ')':
		p.i++
		p.tok = token{kind: tokClose, pos: start, text: ")"}
	case c >= '0' && c <= '9' || c == '.':
		for p.i < len(p.src) && (p.src[p.i] >= '0' && p.src[p.i] <= '9' || p.src[p.i] == '.') {
			p.i++
		}
		// An exponent: 1e6, 2.5E-3. A letter e not followed by digits
		// is left for ParseFloat to refuse with the rest.
		if j := p.i; j < len(p.src) && (p.src[j] == 'e' || p.src[j] == 'E') {
			j++
			if j < len(p.src) && (p.src[j] == '+' || p.src[j] == '-') {
				j++
			}
			if j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
				for j < len(p.src) && p.src[j] >= '0' && p.src[j] <= '9' {
					j++
				}
				p.i = j
			}
		}
		// A word that starts with digits is a column name, as DfE's
		// 2_years_or_more is: digits then a letter or _ make no number.
		if p.i < len(p.src) && isWordByte(p.src[p.i]) {
			for p.i < len(p.src) && isWordByte(p.src[p.i]) {
				p.i++
			}
			p.tok = token{kind: tokName, pos: start, text: p.src[start:p.i]}
			return
		}
		text := p.src[start:p.i]
		f, err := strconv.ParseFloat(text, 64)
		if err != nil || math.IsInf(f, 0) {
			p.fail("%q at character %d is not a number", text, start+1)
			return
		}
		p.tok = token{kind: tokNumber, pos: start, text: text, num: f}
	case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		for p.i < len(p.src) && isWordByte(p.src[p.i]) {
			p.i++
		}
		p.tok = token{kind: tokName, pos: start, text: p.src[start:p.i]}
	case c == '"':
		end := strings.IndexByte(p.src[p.i+1:], '"')
		if end < 0 {
			p.fail("the quoted column name at character %d has no closing \"", start+1)
			return
		}
		name := strings.TrimSpace(p.src[p.i+1 : p.i+1+end])
		p.i += end + 2
		if name == "" {
			p.fail("the quoted column name at character %d is empty", start+1)
			return
		}
		p.tok = token{kind: tokName, pos: start, text: name}
	default:
		p.fail("unexpected character %q at character %d (an expression has numbers, column names, + - * / and brackets)", c, start+1)
	}
}

// sum := product (('+' | '-') product)*
func (p *exprParser) sum(depth int) *Expr {
	left := p.product(depth)
	for p.err == nil && p.tok.kind == tokOp && (p.tok.op == '+' || p.tok.op == '-') {
		op := OpAdd
		if p.tok.op == '-' {
			op = OpSub
		}
		p.next()
		right := p.product(depth)
		left = &Expr{Op: op, Left: left, Right: right}
		// A long chain a+b+c+... nests to the left: bound it like brackets.
		depth++
		if depth > MaxExpressionDepth {
			p.fail("the expression nests more than %d deep", MaxExpressionDepth)
		}
	}
	return left
}

// product := unary (('*' | '/') unary)*
func (p *exprParser) product(depth int) *Expr {
	left := p.unary(depth)
	for p.err == nil && p.tok.kind == tokOp && (p.tok.op == '*' || p.tok.op == '/') {
		op := OpMul
		if p.tok.op == '/' {
			op = OpDiv
		}
		p.next()
		right := p.unary(depth)
		left = &Expr{Op: op, Left: left, Right: right}
		depth++
		if depth > MaxExpressionDepth {
			p.fail("the expression nests more than %d deep", MaxExpressionDepth)
		}
	}
	return left
}

// unary := ('-' | '+') unary | primary
func (p *exprParser) unary(depth int) *Expr {
	if depth > MaxExpressionDepth {
		p.fail("the expression nests more than %d deep", MaxExpressionDepth)
		return nil
	}
	if p.tok.kind == tokOp && (p.tok.op == '-' || p.tok.op == '+') {
		neg := p.tok.op == '-'
		p.next()
		operand := p.unary(depth + 1)
		if neg {
			return &Expr{Op: OpNeg, Left: operand}
		}
		return operand
	}
	return p.primary(depth)
}

// primary := number | column | '(' sum ')'
func (p *exprParser) primary(depth int) *Expr {
	switch p.tok.kind {
	case tokNumber:
		e := &Expr{Op: OpNumber, Number: p.tok.num}
		p.next()
		return e
	case tokName:
		e := &Expr{Op: OpColumn, Column: p.tok.text}
		p.next()
		return e
	case tokOpen:
		open := p.tok.pos
		p.next()
		e := p.sum(depth + 1)
		if p.err != nil {
			return nil
		}
		if p.tok.kind != tokClose {
			p.fail("the bracket at character %d is not closed (found %s)", open+1, p.tok.describe())
			return nil
		}
		p.next()
		return e
	}
	p.fail("expected a number, a column or a bracket, found %s", p.tok.describe())
	return nil
}
