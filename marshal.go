package ddbtrack

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// marshalAttr marshals a task's data or output. It returns nil for a nil
// value, which callers store as "no attribute".
//
// attributevalue.Marshal silently drops values DynamoDB cannot hold
// (channels, functions, complex numbers) and passes NaN through to be
// refused by the server. Either way a caller's data would be lost or
// refused late, so such values are reported here, naming the field.
func marshalAttr(what string, v any) (types.AttributeValue, error) {
	if v == nil {
		return nil, nil
	}
	if err := checkStorable(reflect.ValueOf(v), what); err != nil {
		return nil, fmt.Errorf("ddbtrack: cannot store %s of type %T: %w", what, v, err)
	}
	av, err := attributevalue.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("ddbtrack: cannot store %s of type %T: %w; use a struct, map, slice, string or number that attributevalue can marshal", what, v, err)
	}
	if _, isNull := av.(*types.AttributeValueMemberNULL); isNull {
		return nil, nil
	}
	return av, nil
}

var marshalerType = reflect.TypeFor[attributevalue.Marshaler]()

// checkStorable walks v the way attributevalue.Marshal does and reports the
// first value that it would drop or DynamoDB would refuse.
func checkStorable(v reflect.Value, path string) error {
	if !v.IsValid() {
		return nil
	}
	if v.Type().Implements(marshalerType) {
		return nil // It marshals itself.
	}
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return fmt.Errorf("%s is a %s, which DynamoDB cannot store; leave it out (tag it `dynamodbav:\"-\"`) or convert it", path, v.Type())
	case reflect.Float32, reflect.Float64:
		if f := v.Float(); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s is %v, which a DynamoDB number cannot be; store it as a string or leave it out", path, f)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkStorable(v.Elem(), path)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return nil // []byte is stored as binary.
		}
		for i := range v.Len() {
			if err := checkStorable(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		for it := v.MapRange(); it.Next(); {
			if err := checkStorable(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key())); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("dynamodbav")
			if !f.IsExported() || tag == "-" {
				continue
			}
			name := f.Name
			if n, _, _ := strings.Cut(tag, ","); n != "" {
				name = n
			}
			if err := checkStorable(v.Field(i), path+"."+name); err != nil {
				return err
			}
		}
	}
	return nil
}
