module github.com/cgn-bot/coord

go 1.26
