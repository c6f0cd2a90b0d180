#!/bin/sh
# Runs a class of the image's Kafka jars, as the distribution's script of this name does.
exec java ${KAFKA_HEAP_OPTS:--Xmx256m} -XX:+UseG1GC ${KAFKA_OPTS:-} \
  ${KAFKA_LOG4J_OPTS:--Dlog4j2.configurationFile=/etc/kafka/tools-log4j2.properties} \
  -Dkafka.logs.dir=/opt/kafka/logs -cp '/opt/kafka/libs/*' "$@"
