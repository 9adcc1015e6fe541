module github.com/refrakt/refrakt

go 1.26.8
