package test

p if input == 1.0
