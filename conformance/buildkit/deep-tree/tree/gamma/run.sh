exe
