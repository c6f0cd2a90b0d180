module chatroom/bench/loadgen

go 1.24
