// velure's database clients for the integration tests: the libraries and versions velure's go.mod files pin
// (auth-service: gorm.io/gorm v1.30.0, gorm.io/driver/postgres v1.5.9, pgx v5.5.5; publish-order-service:
// github.com/lib/pq v1.10.9, github.com/golang-migrate/migrate/v4 v4.19.0).
module velure-pooling/tests/clients

go 1.25

require (
	github.com/golang-migrate/migrate/v4 v4.19.0
	github.com/lib/pq v1.10.9
	gorm.io/driver/postgres v1.5.9
	gorm.io/gorm v1.30.0
)

require (
	github.com/hashicorp/errwrap v1.1.0 // indirect
	github.com/hashicorp/go-multierror v1.1.1 // indirect
	github.com/jackc/pgpassfile v1.0.0 // indirect
	github.com/jackc/pgservicefile v0.0.0-20221227161230-091c0ba34f0a // indirect
	github.com/jackc/pgx/v5 v5.5.5 // indirect
	github.com/jackc/puddle/v2 v2.2.1 // indirect
	github.com/jinzhu/inflection v1.0.0 // indirect
	github.com/jinzhu/now v1.1.5 // indirect
	golang.org/x/crypto v0.36.0 // indirect
	golang.org/x/sync v0.12.0 // indirect
	golang.org/x/text v0.23.0 // indirect
)
