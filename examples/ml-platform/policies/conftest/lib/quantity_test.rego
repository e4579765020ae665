package lib.quantity_test

import rego.v1

import data.lib.quantity

test_memory_binary_and_decimal_units if {
	quantity.parse("512Mi") < quantity.parse("1Gi")
	quantity.parse("2G") > quantity.parse("1Gi")
	quantity.parse("1G") < quantity.parse("1Gi")
	quantity.parse("1.5Gi") == 1610612736
	quantity.parse("1.5Gi") > quantity.parse("1Gi")
	quantity.parse("1.5Gi") < quantity.parse("2Gi")
	quantity.parse("1Gi") == 1073741824
	quantity.parse("1024Mi") == quantity.parse("1Gi")
	quantity.parse("0.25Ti") == quantity.parse("256Gi")
	quantity.parse("128974848") == 128974848
	quantity.parse("129e6") == 129000000
	quantity.parse("123Ki") == 125952
	quantity.parse("1k") == 1000
	quantity.parse("1M") == 1000000
	quantity.parse("1T") == 1000000000000
}

test_cpu_millicores if {
	quantity.parse("500m") < quantity.parse("1")
	quantity.parse("1500m") > quantity.parse("1")
	quantity.parse("500m") == quantity.parse("0.5")
	quantity.parse("300m") == quantity.parse("0.3")
	quantity.parse("2") == 2
	quantity.parse("2000m") == quantity.parse("2")
	quantity.parse("250m") < quantity.parse("0.5")
	quantity.parse(".5") == quantity.parse("500m")
	quantity.parse("1.") == 1
	quantity.parse("1.e3") == 1000
	quantity.parse("1.5e3m") == 1.5
}

test_yaml_numbers if {
	quantity.parse(2) == 2
	quantity.parse(0.5) == quantity.parse("500m")
	quantity.parse(16) > quantity.parse("8")
}

test_not_quantities if {
	not quantity.parse("lots")
	not quantity.parse("1Gb")
	not quantity.parse("1 Gi x")
	not quantity.parse("")
	not quantity.parse("Gi")
	not quantity.parse("-1")
	not quantity.parse(true)
}
