// Replaces the operator's pkg/generator/register (see ../main.go): the tests use no generator.
package register
